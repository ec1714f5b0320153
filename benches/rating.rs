//! Rating bench: the pure `rate` function in-process, then `Simulate` over
//! every customer's recorded usage of one month against a real release
//! `tallyd`, then (with a PostgreSQL connection string) the same month rated
//! by one SQL query over an events table holding the same rows.
//!
//! ```text
//! cargo build --release -p tally-server
//! cargo bench --bench rating -- --customers 10000 --events 1000000
//! bash benches/pg-rating.sh --customers 100000 --events 10000000   # with PostgreSQL 15
//! ```
//!
//! Options: `--customers K` (100,000), `--events N` (10,000,000), `--batch B`
//! (10,000), `--clients C` (2), `--runs R` (5: each simulation and each SQL
//! query is timed R times), `--ratings M` (200,000: ratings per timed round
//! of the in-process bench, 5 rounds), `--dsn DSN` (or `PG_RATING_DSN`: also
//! run the PostgreSQL side), `--skip-rate`, `--skip-tally`, `--perf-out FILE`
//! (`perf record -F 199 --call-graph dwarf` on tallyd during the
//! simulations, into FILE).
//!
//! The month is the last whole calendar month before today (UTC). Two sum
//! meters, `api_calls` and `storage_gb`, no group-by. Event `n` (of N)
//! belongs to customer `c = n mod K`, is for `storage_gb` when `n mod 4 = 3`
//! and `api_calls` otherwise, has the value `(1.00 + (n mod 900) / 100) ×
//! (1 + c mod 5)`, a unique id, and the timestamp `n / N` of the way through
//! the month (whole microseconds). Plan `bench` v1 is published: a flat fee,
//! graduated tiers on `api_calls`, a package charge on `storage_gb`; the
//! candidate v2 is a draft with other prices, free units and a tier flat fee.
//! Both sides price from the same two `PlanSpec`s (the SQL is generated from
//! them), and the bench prices what it sent a third time itself: every
//! customer's two totals must agree on all three, to the cent, or it panics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tally::workload::peak_memory_kib;
use tally_client::{
    Aggregation, BillingInterval, Charge, Client, Coupon, CouponDiscount, CouponDuration,
    CustomerSpec, Day, FlatTiming, IntervalUnit, MeterSpec, Period, PlanChoice, PlanKey, PlanSpec,
    Pricing, RoundingMode, SimulateRequest, TaxMode, TaxRounding, TaxRule, Tier, UsageEvent,
    INGEST_EVENTS_MAX,
};
use tally_core::decimal::Dec;
use tally_server::rating::{rate, AppliedCoupon, ChargeUsage, RatingInput};

const PLAN: &str = "bench";
const API: &str = "api_calls";
const STORAGE: &str = "storage_gb";
const CUSTOMER_CHUNK: usize = 1_000;
const RATE_ROUNDS: usize = 5;

#[derive(Debug, Clone)]
struct Options {
    customers: usize,
    events: usize,
    batch: usize,
    clients: usize,
    runs: usize,
    ratings: usize,
    dsn: Option<String>,
    skip_rate: bool,
    skip_tally: bool,
    perf_out: Option<String>,
}

impl Options {
    fn from_args() -> Options {
        let mut options = Options {
            customers: 100_000,
            events: 10_000_000,
            batch: 10_000,
            clients: 2,
            runs: 5,
            ratings: 200_000,
            dsn: std::env::var("PG_RATING_DSN")
                .ok()
                .filter(|s| !s.is_empty()),
            skip_rate: false,
            skip_tally: false,
            perf_out: None,
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
                "--runs" => options.runs = value().parse().expect("--runs R"),
                "--ratings" => options.ratings = value().parse().expect("--ratings M"),
                "--dsn" => options.dsn = Some(value()),
                "--skip-rate" => options.skip_rate = true,
                "--skip-tally" => options.skip_tally = true,
                "--perf-out" => options.perf_out = Some(value()),
                "--bench" => {} // passed by `cargo bench`
                other => panic!("unknown option {other}"),
            }
        }
        assert!(options.customers > 0 && options.events > 0, "K and N > 0");
        assert!(
            (1..=INGEST_EVENTS_MAX).contains(&options.batch),
            "--batch must be 1 to {INGEST_EVENTS_MAX}"
        );
        assert!(options.clients > 0 && options.runs > 0 && options.ratings > 0);
        options
    }
}

// ---------------------------------------------------------------------------
// The data: events, plans, and the bench's own pricing of them.

fn customer(index: usize) -> String {
    format!("cust-{index:06}")
}

/// Event `n`: (customer index, meter, value in hundredths, offset in µs).
fn event(n: usize, options: &Options, month_us: i64) -> (usize, &'static str, i64, i64) {
    let c = n % options.customers;
    let meter = if n % 4 == 3 { STORAGE } else { API };
    let cents = (100 + (n % 900) as i64) * (1 + (c % 5) as i64);
    let offset = (n as i128 * month_us as i128 / options.events as i128) as i64;
    (c, meter, cents, offset)
}

fn cents_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Per customer: (api_calls, storage_gb) in hundredths.
fn sent_usage(options: &Options, month_us: i64) -> Vec<(i64, i64)> {
    let mut usage = vec![(0, 0); options.customers];
    for n in 0..options.events {
        let (c, meter, cents, _) = event(n, options, month_us);
        if meter == API {
            usage[c].0 += cents;
        } else {
            usage[c].1 += cents;
        }
    }
    usage
}

fn d(text: &str) -> Dec {
    Dec(Decimal::from_str(text).expect("decimal"))
}

fn tier(up_to: Option<&str>, unit_price: &str, flat_fee: &str) -> Tier {
    Tier {
        up_to: up_to.map(d),
        unit_price: d(unit_price),
        flat_fee: d(flat_fee),
    }
}

fn charge(code: &str, meter: Option<&str>, free_units: &str, pricing: Pricing) -> Charge {
    Charge {
        code: code.to_string(),
        description: String::new(),
        meter: meter.map(str::to_string),
        group: BTreeMap::new(),
        free_units: d(free_units),
        pricing,
    }
}

fn plan(charges: Vec<Charge>) -> PlanSpec {
    PlanSpec {
        code: PLAN.to_string(),
        name: "Rating bench".to_string(),
        currency: "USD".to_string(),
        interval: BillingInterval {
            unit: IntervalUnit::Monthly,
            anchor: Day::from_ymd(2026, 1, 1).expect("anchor"),
        },
        charges,
        minimum_commitment: None,
        rounding: RoundingMode::HalfUp,
    }
}

/// v1, published: 49.00 a month; API calls graduated 0.012 / 0.009 /
/// 0.0065 at 500 and 1,500; storage at 5.00 per started 100 GB.
fn plan_v1() -> PlanSpec {
    plan(vec![
        charge(
            "base",
            None,
            "0",
            Pricing::Flat {
                amount: d("49.00"),
                timing: FlatTiming::InAdvance,
            },
        ),
        charge(
            "api",
            Some(API),
            "0",
            Pricing::Graduated {
                tiers: vec![
                    tier(Some("500"), "0.012", "0"),
                    tier(Some("1500"), "0.009", "0"),
                    tier(None, "0.0065", "0"),
                ],
            },
        ),
        charge(
            "storage",
            Some(STORAGE),
            "0",
            Pricing::Package {
                size: d("100"),
                price: d("5.00"),
            },
        ),
    ])
}

/// v2, the draft: 39.00; 100 free calls, then 0.015 / 0.0085 (plus 2.50
/// once in that tier) / 0.005 at 400 and 2,000; storage 2.75 per started 50.
fn plan_v2() -> PlanSpec {
    plan(vec![
        charge(
            "base",
            None,
            "0",
            Pricing::Flat {
                amount: d("39.00"),
                timing: FlatTiming::InAdvance,
            },
        ),
        charge(
            "api",
            Some(API),
            "100",
            Pricing::Graduated {
                tiers: vec![
                    tier(Some("400"), "0.015", "0"),
                    tier(Some("2000"), "0.0085", "2.50"),
                    tier(None, "0.005", "0"),
                ],
            },
        ),
        charge(
            "storage",
            Some(STORAGE),
            "0",
            Pricing::Package {
                size: d("50"),
                price: d("2.75"),
            },
        ),
    ])
}

/// The bench's own pricing of one customer (the subset of models the plans
/// use; each line rounded half up to cents, as both sides do).
fn price(spec: &PlanSpec, api: Decimal, storage: Decimal) -> Decimal {
    let mut total = Decimal::ZERO;
    for charge in &spec.charges {
        let quantity = match charge.meter.as_deref() {
            Some(API) => api,
            Some(STORAGE) => storage,
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
            Pricing::Package { size, price } => (billable / size.0).ceil() * price.0,
            other => panic!("the bench does not price {}", other.model()),
        };
        total +=
            line.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    }
    total
}

/// Per customer (index order): (v1, v2) totals as the bench prices them.
fn expected_totals(usage: &[(i64, i64)]) -> Vec<(Decimal, Decimal)> {
    let (v1, v2) = (plan_v1(), plan_v2());
    usage
        .iter()
        .map(|&(api, storage)| {
            let (api, storage) = (Decimal::new(api, 2), Decimal::new(storage, 2));
            (price(&v1, api, storage), price(&v2, api, storage))
        })
        .collect()
}

fn grand_totals(per_customer: &[(Decimal, Decimal)]) -> (Decimal, Decimal) {
    per_customer
        .iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(a, b), (x, y)| {
            (a + x, b + y)
        })
}

// ---------------------------------------------------------------------------
// Timings.

#[derive(Debug, Clone, Default)]
struct Runs(Vec<f64>);

impl Runs {
    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }
    fn min(&self) -> f64 {
        self.sorted()[0]
    }
    fn median(&self) -> f64 {
        let sorted = self.sorted();
        sorted[sorted.len() / 2]
    }
    fn max(&self) -> f64 {
        *self.sorted().last().expect("runs")
    }
    fn list(&self) -> String {
        let texts: Vec<String> = self.0.iter().map(|v| format!("{v:.0}")).collect();
        texts.join(" / ")
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |kib| {
        format!("{:.0} MiB", kib as f64 / 1024.0)
    })
}

// ---------------------------------------------------------------------------
// 1. `rate` in-process.

fn rate_bench(options: &Options, period: Period) {
    let v1 = plan_v1();
    let coupon = AppliedCoupon {
        coupon: Coupon {
            code: "launch10".into(),
            discount: CouponDiscount::Percentage { percent: d("10") },
            duration: CouponDuration::Forever,
        },
        periods_used: 0,
        remaining: None,
    };
    let tax = TaxRule {
        code: "vat".into(),
        country: "DE".into(),
        region: None,
        rate: d("19"),
        mode: TaxMode::Exclusive,
        rounding: RoundingMode::HalfUp,
        granularity: TaxRounding::PerLine,
    };
    // Distinct usages, as a billing run would see them.
    let usages: Vec<BTreeMap<String, ChargeUsage>> = (0..options.ratings.min(100_000))
        .map(|i| {
            let api = Decimal::new(100 * i as i64 % 400_000 + 1_234, 2);
            let storage = Decimal::new(37 * i as i64 % 90_000, 2);
            BTreeMap::from([
                (
                    "api".to_string(),
                    ChargeUsage {
                        quantity: api,
                        transactions: Vec::new(),
                    },
                ),
                (
                    "storage".to_string(),
                    ChargeUsage {
                        quantity: storage,
                        transactions: Vec::new(),
                    },
                ),
            ])
        })
        .collect();
    let cases: [(&str, &[AppliedCoupon], &[TaxRule]); 2] = [
        (
            "3 charges + coupon + tax",
            std::slice::from_ref(&coupon),
            std::slice::from_ref(&tax),
        ),
        ("3 charges (as Simulate)", &[], &[]),
    ];
    for (name, coupons, taxes) in cases {
        let mut rates = Runs::default();
        let mut checksum = Decimal::ZERO;
        for _ in 0..RATE_ROUNDS {
            let started = Instant::now();
            for i in 0..options.ratings {
                let rating = rate(&RatingInput {
                    plan: &v1,
                    plan_version: 1,
                    currency_scale: 2,
                    period,
                    usage: &usages[i % usages.len()],
                    coupons,
                    taxes,
                    adjustments: &[],
                })
                .expect("rate");
                checksum += std::hint::black_box(rating).total;
            }
            rates
                .0
                .push(options.ratings as f64 / started.elapsed().as_secs_f64());
        }
        println!(
            "rate, {name:<26} {:.0} ratings/s median, {:.0} max, {:.2} µs each (median); {} ratings × {RATE_ROUNDS} rounds, checksum {checksum}",
            rates.median(),
            rates.max(),
            1e6 / rates.median(),
            options.ratings
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Tally: ingestion, then Simulate.

async fn connect(url: &str) -> Client {
    tally::client_builder(url.to_string())
        .timeout(Duration::from_secs(600))
        .build()
        .await
        .unwrap_or_else(|error| panic!("connect to {url}: {error}"))
}

async fn set_up(client: &Client, options: &Options) {
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
    for code in [API, STORAGE] {
        let meter = MeterSpec {
            code: code.to_string(),
            aggregation: Aggregation::Sum,
            value_property: None,
            filters: BTreeMap::new(),
            group_by: Vec::new(),
            grace_period_seconds: 0,
        };
        client
            .define_meter(&meter, "rating bench")
            .await
            .expect("define a meter");
    }
}

/// One client's share: batches `index`, `index + clients`, ..., each built
/// just before it is sent (10^7 events built up front would take ~8 GiB).
/// Returns the time spent building them.
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
                let (c, meter, cents, offset) = event(n, &options, month_us);
                UsageEvent {
                    event_id: format!("ev-{n:09}"),
                    customer: customer(c),
                    meter: meter.to_string(),
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

/// What a side answered: per customer (index order) its two totals.
struct Answer {
    per_customer: Vec<(Decimal, Decimal)>,
    totals: (Decimal, Decimal),
}

fn check(side: &str, answer: &Answer, expected: &[(Decimal, Decimal)]) {
    assert_eq!(
        answer.per_customer.len(),
        expected.len(),
        "{side}: customers answered"
    );
    if let Some((index, (got, want))) = answer
        .per_customer
        .iter()
        .zip(expected)
        .enumerate()
        .find(|(_, (got, want))| got != want)
    {
        panic!(
            "{side}: customer {} is {got:?}, the bench prices {want:?}",
            customer(index)
        );
    }
    assert_eq!(
        answer.totals,
        grand_totals(expected),
        "{side}: grand totals"
    );
}

struct TallyFigures {
    simulate: Runs,
    totals: (Decimal, Decimal),
}

async fn tally_side(
    options: &Options,
    period: Period,
    expected: &[(Decimal, Decimal)],
) -> TallyFigures {
    let from_us = period.start.start_ns().expect("start") / 1_000;
    let month_us = period.end.start_ns().expect("end") / 1_000 - from_us;
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let server = tally::Tallyd::start(data_dir.path());
    println!("tallyd pid {} on {}", server.pid(), server.url);
    let client = connect(&server.url).await;

    let started = Instant::now();
    set_up(&client, options).await;
    println!(
        "set-up             USD, {} customers, 2 meters in {:.2} s",
        options.customers,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..options.clients {
        let client = connect(&server.url).await;
        tasks.push(tokio::spawn(send_batches(
            client,
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
        "ingestion          {} events in {:.2} s: {:.0} events/s (building the batches, in the clients: {:.2} s of it, summed over clients); tallyd peak {}",
        options.events,
        ingest.as_secs_f64(),
        options.events as f64 / ingest.as_secs_f64(),
        building.as_secs_f64(),
        mib(peak_memory_kib(server.pid()))
    );

    let v1 = client.publish_plan(&plan_v1()).await.expect("publish v1");
    assert_eq!(v1.version, 1, "a fresh ledger");
    let request = SimulateRequest::new(PlanChoice::Draft(plan_v2()), period)
        .baseline(PlanKey::version(PLAN, 1));

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

    let mut simulate = Runs::default();
    let mut totals = (Decimal::ZERO, Decimal::ZERO);
    for run in 0..options.runs {
        let started = Instant::now();
        let result = client.simulate(&request).await.expect("simulate");
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        simulate.0.push(elapsed);
        let answer = Answer {
            per_customer: result
                .customers
                .iter()
                .map(|c| (c.current_total, c.simulated_total))
                .collect(),
            totals: (result.current_total, result.simulated_total),
        };
        assert!(
            result
                .customers
                .iter()
                .enumerate()
                .all(|(i, c)| c.customer == customer(i)),
            "customers in id order"
        );
        check("tally", &answer, expected);
        totals = answer.totals;
        println!(
            "simulate run {run}     {elapsed:.0} ms ({} customers, as of seq {})",
            result.customers.len(),
            result.as_of_seq
        );
    }
    if let Some(mut child) = perf {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    println!(
        "simulate           median {:.0} ms  min {:.0} ms  max {:.0} ms  ({} runs: {}); tallyd peak {}",
        simulate.median(),
        simulate.min(),
        simulate.max(),
        options.runs,
        simulate.list(),
        mib(peak_memory_kib(server.pid()))
    );
    println!(
        "tally totals       v1 {}  v2 {}  difference {}",
        totals.0,
        totals.1,
        totals.1 - totals.0
    );
    drop(server);
    TallyFigures { simulate, totals }
}

// ---------------------------------------------------------------------------
// 3. PostgreSQL: the same rows, one query.

fn sql_number(value: Decimal) -> String {
    value.normalize().to_string()
}

/// One plan's net total for a customer, as SQL over the columns `usage` names
/// for each meter: each line rounded to cents (PostgreSQL's `round` is half
/// away from zero, the plans' `half_up` for these positive amounts).
fn sql_plan(spec: &PlanSpec, usage: impl Fn(&str) -> String) -> String {
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
            (Pricing::Package { size, price }, Some(q)) => format!(
                "CEIL({q} / {}) * {}",
                sql_number(size.0),
                sql_number(price.0)
            ),
            (other, _) => panic!("no SQL for {}", other.model()),
        };
        lines.push(format!("ROUND({line}, 2)"));
    }
    lines.join("\n       + ")
}

fn rating_sql(period: Period) -> String {
    let column = |meter: &str| format!("COALESCE(u.{meter}, 0)");
    format!(
        "WITH usage AS (
    SELECT customer,
           SUM(value) FILTER (WHERE meter = '{API}') AS {API},
           SUM(value) FILTER (WHERE meter = '{STORAGE}') AS {STORAGE}
    FROM events
    WHERE ts >= '{start} 00:00:00+00' AND ts < '{end} 00:00:00+00'
    GROUP BY customer
), rated AS (
    SELECT c.id AS customer,
       {v1} AS current_total,
       {v2} AS simulated_total
    FROM customers c LEFT JOIN usage u ON u.customer = c.id
)
SELECT customer, current_total, simulated_total, simulated_total - current_total
FROM rated ORDER BY customer",
        start = period.start,
        end = period.end,
        v1 = sql_plan(&plan_v1(), column),
        v2 = sql_plan(&plan_v2(), column),
    )
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
        let (c, meter, cents, offset) = event(n, options, month_us);
        writeln!(
            out,
            "ev-{n:09},{},{meter},{},{}",
            customer(c),
            timestamptz(from_us + offset),
            cents_text(cents)
        )
        .expect("write events.csv");
    }
    out.flush().expect("flush events.csv");
}

struct PgFigures {
    query: Runs,
    totals: (Decimal, Decimal),
}

async fn pg_side(
    dsn: &str,
    options: &Options,
    period: Period,
    expected: &[(Decimal, Decimal)],
) -> PgFigures {
    let from_us = period.start.start_ns().expect("start") / 1_000;
    let month_us = period.end.start_ns().expect("end") / 1_000 - from_us;
    let client = pg_connect(dsn).await;
    let version = client
        .simple_query("SHOW server_version")
        .await
        .expect("version");
    let settings = client
        .simple_query(
            "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) \
             FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', \
             'max_parallel_workers_per_gather', 'jit', 'fsync', 'synchronous_commit')",
        )
        .await
        .expect("settings");
    let text = |messages: &[tokio_postgres::SimpleQueryMessage]| {
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default()
    };
    println!(
        "postgresql         {} ({})",
        text(&version),
        text(&settings)
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
    let names: String = (0..options.customers).map(|c| customer(c) + "\n").collect();
    std::fs::write(&customers_csv, names).expect("customers.csv");
    println!(
        "pg csv             written in {:.2} s ({} MiB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&events_csv).expect("size").len() >> 20
    );

    client
        .batch_execute(
            "DROP TABLE IF EXISTS events; DROP TABLE IF EXISTS customers;
             CREATE TABLE customers (id text PRIMARY KEY);
             CREATE TABLE events (
                 event_id text PRIMARY KEY,
                 customer text NOT NULL REFERENCES customers,
                 meter text NOT NULL,
                 ts timestamptz NOT NULL,
                 value numeric(20, 2) NOT NULL CHECK (value >= 0)
             );",
        )
        .await
        .expect("schema");
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "COPY customers FROM '{}';",
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
    for table in ["customers", "events"] {
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

    let sql = rating_sql(period);
    let plan = client
        .simple_query(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain");
    println!("pg plan:");
    for message in &plan {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            println!("    {}", row.get(0).unwrap_or_default());
        }
    }
    let backend: String = text(
        &client
            .simple_query("SELECT pg_backend_pid()")
            .await
            .expect("pid"),
    );
    let mut query = Runs::default();
    let mut totals = (Decimal::ZERO, Decimal::ZERO);
    for run in 0..options.runs {
        let started = Instant::now();
        let messages = client.simple_query(&sql).await.expect("rating query");
        let mut per_customer = Vec::with_capacity(options.customers);
        let (mut current, mut simulated) = (Decimal::ZERO, Decimal::ZERO);
        for message in &messages {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                let number =
                    |i: usize| Decimal::from_str(row.get(i).expect("a value")).expect("a decimal");
                let (now, then) = (number(1), number(2));
                current += now;
                simulated += then;
                per_customer.push((now, then));
            }
        }
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        query.0.push(elapsed);
        let answer = Answer {
            per_customer,
            totals: (current, simulated),
        };
        check("postgresql", &answer, expected);
        totals = answer.totals;
        println!("pg query run {run}     {elapsed:.0} ms");
    }
    let backend_peak = backend.parse().ok().and_then(peak_memory_kib);
    println!(
        "pg query           median {:.0} ms  min {:.0} ms  max {:.0} ms  ({} runs: {}); backend peak {}",
        query.median(),
        query.min(),
        query.max(),
        options.runs,
        query.list(),
        mib(backend_peak)
    );
    println!(
        "pg totals          v1 {}  v2 {}  difference {}",
        totals.0,
        totals.1,
        totals.1 - totals.0
    );
    client
        .batch_execute("DROP TABLE events; DROP TABLE customers;")
        .await
        .expect("drop");
    PgFigures { query, totals }
}

/// The last whole calendar month before today (UTC).
fn last_month() -> Period {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let today = Day((now / 86_400) as i32);
    let interval = BillingInterval {
        unit: IntervalUnit::Monthly,
        anchor: Day::from_ymd(2026, 1, 1).expect("anchor"),
    };
    let this_month = interval.period_containing(today).expect("this month");
    interval
        .period_containing(Day(this_month.start.0 - 1))
        .expect("last month")
}

#[tokio::main]
async fn main() {
    let options = Options::from_args();
    let period = last_month();
    let mut header = String::new();
    let _ = write!(
        header,
        "customers={} events={} batch={} clients={} runs={} month={}..{}",
        options.customers,
        options.events,
        options.batch,
        options.clients,
        options.runs,
        period.start,
        period.end
    );
    println!("{header}");

    if !options.skip_rate {
        rate_bench(&options, period);
    }
    if options.skip_tally && options.dsn.is_none() {
        return;
    }

    let started = Instant::now();
    let month_us =
        (period.end.start_ns().expect("end") - period.start.start_ns().expect("start")) / 1_000;
    let expected = expected_totals(&sent_usage(&options, month_us));
    let (v1, v2) = grand_totals(&expected);
    println!(
        "bench totals       v1 {v1}  v2 {v2}  difference {} (priced by the bench in {:.2} s)",
        v2 - v1,
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
        assert_eq!(tally.totals, pg.totals, "both sides' grand totals");
        println!(
            "ratio              Tally simulate ÷ PostgreSQL query: median {:.2}, min {:.2} (above 1: PostgreSQL is faster); totals equal to the cent",
            tally.simulate.median() / pg.query.median(),
            tally.simulate.min() / pg.query.min()
        );
    }
}
