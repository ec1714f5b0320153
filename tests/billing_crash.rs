// Goal: a billing run is exactly-once across crashes. A month is billed for
// many customers while tallyd is SIGKILLed at random moments of the run and
// restarted on the same data directory; after each kill the run is started
// again, until one finishes. In the end every customer has exactly one live
// invoice for the month's billing date, with the total its usage gives;
// invoice numbers run 1..n without a gap or a repeat; the journal holds one
// `invoice_issued` entry per customer; the receivable equals the invoices'
// totals; running the month again creates nothing and writes nothing; and
// `tallyd verify` passes on the stopped data directory.
//
// Kills are placed by progress: after a random number of invoices of the
// current run have been reported issued (each progress step is one writer
// request of invoices), plus a few random milliseconds, so that each lands
// while the run is issuing. The seed is printed; set TALLY_BILLING_CRASH_SEED
// to replay the schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally::crash::{
    connect_once, kill_and_restart, seeded_rng, start_tallyd, KillSchedule, ServerSlot,
};
use tally_client::{
    Aggregation, BillingProfile, BillingRunRequest, Client, CustomerSpec, Decimal, MeterSpec,
    Period, PlanKey, PlanSpec, UsageEvent,
};
use tally_core::entry::EntryBody;
use tokio::sync::watch;
use tokio_stream::StreamExt;

/// Seven writer requests of 1,000 invoices (the run's chunks): each kill
/// comes right after a chunk is reported and costs at most the one in flight,
/// so three kills leave at least one chunk for the last run, and every kill
/// lands before the billing is done (a kill waiting for a report that never
/// comes would hang the test).
const CUSTOMERS: usize = 7_000;
const KILLS: usize = 3;
const CURRENCY: &str = "USD";
const METER: &str = "api_calls";
/// How long the whole billing may take, restarts included.
const BILLING_DEADLINE: Duration = Duration::from_secs(600);

fn customer(index: usize) -> String {
    format!("cust-{index:05}")
}

/// Customer `i` made `i % 7 + 1` calls events of `10 * (i % 13 + 1)` calls
/// each in April 2026.
fn events(index: usize) -> Vec<UsageEvent> {
    let april = "2026-04-01"
        .parse::<tally_client::Day>()
        .unwrap()
        .start_ns()
        .unwrap();
    (0..index % 7 + 1)
        .map(|k| UsageEvent {
            event_id: format!("e-{index}-{k}"),
            customer: customer(index),
            meter: METER.to_string(),
            timestamp: april + (k as i64 + 1) * 86_400_000_000_000,
            value: Some((10 * (index % 13 + 1)).to_string()),
            properties: BTreeMap::new(),
        })
        .collect()
}

/// 9.00 a month in arrears plus 0.01 per call: customer `i`'s April total.
fn expected_total(index: usize) -> Decimal {
    let calls = (index % 7 + 1) as i64 * 10 * (index % 13 + 1) as i64;
    Decimal::new(900 + calls, 2)
}

fn plan() -> PlanSpec {
    let json = serde_json::json!({
        "code": "std",
        "currency": CURRENCY,
        "interval": { "unit": "monthly", "anchor": "2026-04-01" },
        "charges": [
            { "code": "base", "pricing": { "model": "flat", "amount": "9", "timing": "in_arrears" } },
            { "code": "calls", "meter": METER, "pricing": { "model": "per_unit", "unit_price": "0.01" } },
        ],
    });
    serde_json::from_value(json).expect("a plan document")
}

fn april() -> Period {
    Period {
        start: "2026-04-01".parse().unwrap(),
        end: "2026-05-01".parse().unwrap(),
    }
}

async fn set_up(client: &Client) {
    client.define_currency(CURRENCY, 2).await.unwrap();
    let meter = MeterSpec {
        code: METER.to_string(),
        aggregation: Aggregation::Sum,
        value_property: None,
        filters: BTreeMap::new(),
        group_by: Vec::new(),
        grace_period_seconds: 0,
    };
    client.define_meter(&meter, "API calls").await.unwrap();
    client.publish_plan(&plan()).await.unwrap();
    for chunk in (0..CUSTOMERS).collect::<Vec<_>>().chunks(500) {
        let specs = chunk.iter().map(|&i| CustomerSpec::new(customer(i)));
        for result in client.create_customers(specs).await.unwrap() {
            result.unwrap();
        }
    }
    let start = "2026-04-01".parse().unwrap();
    let key = PlanKey {
        code: "std".into(),
        version: None,
    };
    // Profiles and subscriptions, 64 at a time.
    let indexes: Vec<usize> = (0..CUSTOMERS).collect();
    for chunk in indexes.chunks(64) {
        let calls = chunk.iter().map(|&i| {
            let key = key.clone();
            async move {
                let profile = BillingProfile {
                    customer_id: customer(i),
                    currency: CURRENCY.into(),
                    country: "US".into(),
                    region: None,
                    tax_id: String::new(),
                    timezone: "UTC".into(),
                    invoice_series: "INV".into(),
                    payment_terms_days: 30,
                };
                client.set_billing_profile(&profile).await.unwrap();
                client
                    .subscribe(&format!("sub-{i}"), &customer(i), &key, start)
                    .await
                    .unwrap();
            }
        });
        futures_join_all(calls).await;
    }
    let all: Vec<UsageEvent> = (0..CUSTOMERS).flat_map(events).collect();
    for batch in all.chunks(1_000) {
        let outcome = client.ingest_events(batch).await.unwrap();
        assert_eq!(outcome.recorded as usize, batch.len());
    }
}

/// Awaits every future (a small join without another dependency).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    for handle in handles {
        handle.await;
    }
}

/// Runs April's billing until a run finishes, following the server across
/// restarts; counts the invoices reported issued into `progressed`. Returns
/// the finished run's answer and how many runs were started.
async fn bill_until_done(
    mut server: watch::Receiver<ServerSlot>,
    progressed: Arc<AtomicUsize>,
) -> (tally_client::BillingRun, usize, Vec<String>) {
    let started = Instant::now();
    let mut runs = 0;
    let mut failures = Vec::new();
    loop {
        assert!(
            started.elapsed() < BILLING_DEADLINE,
            "billing unfinished after {runs} runs: {failures:?}"
        );
        let (generation, url) = server.borrow_and_update().clone();
        if let Some(url) = url {
            if let Some(client) = connect_once(&url).await {
                runs += 1;
                let mut last = 0;
                let result = client
                    .run_billing_with_progress(&BillingRunRequest::new(april()), |step| {
                        let step = step.done as usize;
                        progressed.fetch_add(step.saturating_sub(last), Ordering::SeqCst);
                        last = step;
                    })
                    .await;
                match result {
                    Ok(run) => return (run, runs, failures),
                    Err(error) => failures.push(format!("generation {generation}: {error}")),
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), server.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_during_a_billing_run_invoice_each_customer_once() {
    let mut rng = seeded_rng("TALLY_BILLING_CRASH_SEED");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = start_tallyd(dir.path()).await;
    set_up(&server.client().await.unwrap()).await;
    println!(
        "set up {CUSTOMERS} customers in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (slot, receiver) = watch::channel((0, Some(server.url.clone())));
    let progressed = Arc::new(AtomicUsize::new(0));
    let biller = tokio::spawn(bill_until_done(receiver, Arc::clone(&progressed)));
    // Each kill right after the next progress report (one chunk of 1,000
    // invoices issued) since the last start, plus up to 20 ms: it lands in
    // the run under way.
    let server = kill_and_restart(
        server,
        &KillSchedule {
            kills: KILLS,
            after_min: 1,
            after_spread: 1,
            pause_ms_max: 20,
            poll: Duration::from_millis(1),
            total: CUSTOMERS * (KILLS + 1),
            unit: "invoices",
        },
        &mut rng,
        &slot,
        &progressed,
    )
    .await;
    let (run, runs, failures) = biller.await.unwrap();
    println!(
        "billing finished after {runs} runs; {} invoices reported by every run; failures: {failures:?}",
        progressed.load(Ordering::SeqCst)
    );

    let client = server.client().await.unwrap();
    let invoices = client.list_all_invoices(None).await.unwrap();
    // Exactly one live invoice per customer, for May 1, with its total.
    let live: Vec<_> = invoices
        .iter()
        .filter(|i| i.void_reason.is_none())
        .collect();
    assert_eq!(live.len(), CUSTOMERS, "one invoice per customer");
    let mut per_customer: BTreeMap<&str, usize> = BTreeMap::new();
    for invoice in &live {
        *per_customer
            .entry(invoice.customer_id.as_str())
            .or_default() += 1;
        assert_eq!(invoice.period_end, april().end);
        let index: usize = invoice.customer_id["cust-".len()..].parse().unwrap();
        assert_eq!(invoice.total, expected_total(index), "{}", invoice.number);
    }
    assert!(per_customer.values().all(|n| *n == 1));
    // Numbers 1..n per series and year, none twice.
    let sequences: BTreeSet<u64> = invoices.iter().map(|i| i.sequence).collect();
    assert_eq!(sequences.len(), invoices.len(), "a number twice");
    assert_eq!(
        sequences,
        (1..=invoices.len() as u64).collect::<BTreeSet<_>>(),
        "a gap in the numbers"
    );
    // The finished run answers every customer's invoice.
    assert_eq!(run.invoices.len(), CUSTOMERS);
    // The receivable is what the invoices ask.
    let owed: Decimal = live.iter().map(|i| i.amount_due).sum();
    let balance = client
        .balances(["assets:receivable:usd"], tally_client::AsOf::Now)
        .await
        .unwrap();
    assert_eq!(balance.balances[0].balance.balance, owed);

    // The journal holds one invoice_issued entry per customer.
    let length = client.ledger_info().await.unwrap().journal_length;
    let mut stream = client.follow_journal(0, false).await.unwrap();
    let mut issued = BTreeSet::new();
    let mut read = 0;
    while let Some(entry) = stream.next().await {
        let entry = entry.unwrap();
        read += 1;
        let decoded = tally_core::codec::decode(&entry.canonical).expect("canonical entry");
        if let EntryBody::InvoiceIssued(body) = decoded.body {
            assert!(
                issued.insert(body.invoice.customer_id.clone()),
                "issued twice"
            );
        }
    }
    assert_eq!(read, length);
    assert_eq!(issued.len(), CUSTOMERS);

    // The month again: nothing created, nothing written.
    let again = client
        .run_billing(&BillingRunRequest::new(april()))
        .await
        .unwrap();
    assert_eq!(again.created, 0);
    assert_eq!(client.ledger_info().await.unwrap().journal_length, length);
    drop(client);

    tokio::task::spawn_blocking(move || server.terminate_and_verify())
        .await
        .unwrap();
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}
