// Goal: usage ingestion is exactly-once across crashes. Clients send batches
// of events with unique ids while tallyd is SIGKILLed at random moments and
// restarted on the same data directory; every batch without an answer is sent
// again, unchanged, until one comes. In the end every event is counted exactly
// once — by the stored aggregates and by a scan of the journal alike — and
// sending everything again records nothing.
//
// Each event's value is 1 plus an amount derived from its number, so the sum
// and count of every customer (and region) is known in advance. Kills are
// placed by progress, not by time: after a random number of batches has been
// acknowledged since the last start, plus a random delay of a few
// milliseconds, so each lands while batches are in flight. The seed is
// printed; set TALLY_USAGE_CRASH_SEED to replay the schedule.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::prelude::ToPrimitive;
use tally::crash::{
    connect_once, kill_and_restart, seeded_rng, start_tallyd, KillSchedule, ServerSlot,
};
use tally_client::{
    Aggregation, Client, CustomerSpec, Decimal, EventResult, MeterSpec, UsageEvent, UsageQuery,
    UsageResult, INGEST_EVENTS_MAX,
};
use tokio::sync::watch;

const CUSTOMER_COUNT: usize = 5;
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
const WRITER_COUNT: usize = 4;
const BATCHES_PER_WRITER: usize = 20;
const BATCH_EVENTS: usize = 500;
const KILLS: usize = 3;
/// Batches acknowledged since the last start before a kill: 2 to 2 + this - 1.
const KILL_AFTER_BATCHES_SPREAD: usize = 6;
const METER: &str = "api_calls";
const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;
/// How long one batch may go unacknowledged, retries included.
const BATCH_DEADLINE: Duration = Duration::from_secs(120);

fn customer(index: usize) -> String {
    format!("cust-{index}")
}

/// Event `number`'s value in hundredths: 1.00 plus 0.00 to 9.99.
fn value_cents(number: usize) -> i64 {
    100 + (number * 37 % 1_000) as i64
}

/// Event `number`: its customer, region and value follow from the number;
/// timestamps are spread over the two hours starting at `base`.
fn event(number: usize, base: i64) -> UsageEvent {
    let cents = value_cents(number);
    let offset_ns = (number as i64 * 7_919_000_017) % (2 * HOUR_NS);
    UsageEvent {
        event_id: format!("evt-{number:07}"),
        customer: customer(number % CUSTOMER_COUNT),
        meter: METER.to_string(),
        timestamp: base + offset_ns,
        value: Some(format!("{}.{:02}", cents / 100, cents % 100)),
        properties: BTreeMap::from([(
            "region".to_string(),
            REGIONS[number % REGIONS.len()].to_string(),
        )]),
    }
}

/// The count and the sum in hundredths of each (customer, region), from the
/// events' numbers alone.
type Expected = BTreeMap<(String, String), (u64, i64)>;

fn expected_usage(event_count: usize) -> Expected {
    let mut expected = Expected::new();
    for number in 0..event_count {
        let key = (
            customer(number % CUSTOMER_COUNT),
            REGIONS[number % REGIONS.len()].to_string(),
        );
        let (count, cents) = expected.entry(key).or_default();
        *count += 1;
        *cents += value_cents(number);
    }
    expected
}

/// What a writer learnt about one batch.
struct BatchLog {
    events: Vec<UsageEvent>,
    /// Sends until one was answered (1: answered the first time).
    attempts: u32,
    /// The answer's results, one per event.
    results: Vec<EventResult>,
}

/// Sends `events` until an answer comes, following the server across
/// restarts; every failure (connection lost, refused, timed out) is retried
/// with the same events.
async fn send_until_answered(
    events: Vec<UsageEvent>,
    server: &mut watch::Receiver<ServerSlot>,
    client: &mut Option<(u64, Client)>,
) -> BatchLog {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        assert!(
            started.elapsed() < BATCH_DEADLINE,
            "batch {} unanswered after {attempts} attempts",
            events[0].event_id
        );
        let (generation, url) = server.borrow_and_update().clone();
        if client.as_ref().is_none_or(|(seen, _)| *seen != generation) {
            *client = match &url {
                Some(url) => connect_once(url).await.map(|client| (generation, client)),
                None => None,
            };
        }
        if let Some((_, connected)) = client.as_ref() {
            attempts += 1;
            if let Ok(outcome) = connected.ingest_events(&events).await {
                return BatchLog {
                    events,
                    attempts,
                    results: outcome.results,
                };
            }
        }
        // Down, restarting, or this attempt's answer was lost: wait for the
        // next start (or a moment) and send the same events again.
        let _ = tokio::time::timeout(Duration::from_millis(100), server.changed()).await;
    }
}

/// One client: its batches in order, each sent until answered.
async fn writer(
    batches: Vec<Vec<UsageEvent>>,
    mut server: watch::Receiver<ServerSlot>,
    acknowledged: Arc<AtomicUsize>,
) -> Vec<BatchLog> {
    let mut client = None;
    let mut logs = Vec::with_capacity(batches.len());
    for events in batches {
        logs.push(send_until_answered(events, &mut server, &mut client).await);
        acknowledged.fetch_add(1, Ordering::SeqCst);
    }
    logs
}

async fn set_up(client: &Client) {
    let customers = (0..CUSTOMER_COUNT).map(|index| CustomerSpec::new(customer(index)));
    for result in client.create_customers(customers).await.unwrap() {
        assert!(result.unwrap().created);
    }
    let meter = MeterSpec {
        code: METER.to_string(),
        aggregation: Aggregation::Sum,
        value_property: None,
        filters: BTreeMap::new(),
        group_by: vec!["region".to_string()],
        grace_period_seconds: 0,
    };
    let defined = client.define_meter(&meter, "API calls").await.unwrap();
    assert_eq!(defined.version, 1);
}

/// Each (customer, region)'s count and sum in hundredths from a query grouped
/// by region.
fn observed(result: &UsageResult) -> Expected {
    let mut observed = Expected::new();
    for group in &result.groups {
        let region = group.group.get("region").cloned().unwrap_or_default();
        let cents = group.value * Decimal::ONE_HUNDRED;
        assert!(
            cents.fract().is_zero(),
            "{} is not whole cents",
            group.value
        );
        let cents = cents.to_i64().expect("cents fit in i64");
        let previous = observed.insert((group.customer.clone(), region), (group.count, cents));
        assert!(previous.is_none(), "group {group:?} answered twice");
    }
    observed
}

/// Per customer: the expected figures summed over regions.
fn per_customer(expected: &Expected) -> BTreeMap<String, (u64, i64)> {
    let mut totals: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for ((customer, _), (count, cents)) in expected {
        let total = totals.entry(customer.clone()).or_default();
        total.0 += count;
        total.1 += cents;
    }
    totals
}

/// The stored aggregates and a scan of the journal both hold exactly the
/// expected usage, per customer and per customer and region, over the whole
/// window and per customer asked alone.
async fn assert_usage(client: &Client, base: i64, expected: &Expected) {
    let window = UsageQuery::new(METER, base, base + 2 * HOUR_NS);
    let expected_customers = per_customer(expected);
    for recompute in [false, true] {
        let source = if recompute {
            "the journal scan"
        } else {
            "the stored aggregates"
        };
        let by_region = window.clone().group_by("region").recompute(recompute);
        let answer = client.query_usage(&by_region).await.unwrap();
        assert_eq!(
            &observed(&answer),
            expected,
            "{source} by customer and region"
        );

        let answer = client
            .query_usage(&window.clone().recompute(recompute))
            .await
            .unwrap();
        let totals: BTreeMap<String, (u64, i64)> = observed(&answer)
            .into_iter()
            .map(|((customer, _), figures)| (customer, figures))
            .collect();
        assert_eq!(totals, expected_customers, "{source} by customer");

        for (name, figures) in &expected_customers {
            let one = window.clone().customer(name.clone()).recompute(recompute);
            let answer = client.query_usage(&one).await.unwrap();
            assert_eq!(answer.groups.len(), 1, "{source}: {name} alone");
            let group = &answer.groups[0];
            let cents = Decimal::new(figures.1, 2);
            assert_eq!(
                (group.count, group.value),
                (figures.0, cents),
                "{source}: {name}"
            );
        }
    }
}

/// Every batch is held entirely: a first answer records every event; a later
/// one may find some or all recorded already. Returns each event's place
/// (entry seq, index) and the events a lost answer had recorded.
fn assert_answers(logs: &[BatchLog]) -> (HashMap<String, (u64, u32)>, usize) {
    let mut places = HashMap::new();
    let mut recorded_unacknowledged = 0;
    for log in logs {
        assert_eq!(log.results.len(), log.events.len());
        for (event, result) in log.events.iter().zip(&log.results) {
            let place = match result {
                EventResult::Recorded(place) => place,
                EventResult::Duplicate(place) => {
                    assert!(
                        log.attempts > 1,
                        "{} is a duplicate on its batch's first send",
                        event.event_id
                    );
                    recorded_unacknowledged += 1;
                    place
                }
                EventResult::Rejected(error) => panic!("{} refused: {error:?}", event.event_id),
            };
            assert!(
                place.counted && !place.late,
                "{}: {place:?}",
                event.event_id
            );
            let previous = places.insert(event.event_id.clone(), (place.seq, place.index));
            assert!(previous.is_none(), "{} sent twice", event.event_id);
        }
    }
    let distinct: HashSet<&(u64, u32)> = places.values().collect();
    assert_eq!(distinct.len(), places.len(), "two events share one place");
    (places, recorded_unacknowledged)
}

/// Sends every event again in the largest batches: each is a duplicate at the
/// place it was recorded, and nothing is written.
async fn assert_resend_changes_nothing(
    client: &Client,
    places: &HashMap<String, (u64, u32)>,
    events: &[UsageEvent],
) {
    let length_before = client.ledger_info().await.unwrap().journal_length;
    for chunk in events.chunks(INGEST_EVENTS_MAX) {
        let outcome = client.ingest_events(chunk).await.unwrap();
        assert_eq!(outcome.duplicates, chunk.len() as u64);
        for (event, result) in chunk.iter().zip(&outcome.results) {
            let EventResult::Duplicate(place) = result else {
                panic!("{} sent again: {result:?}", event.event_id);
            };
            assert_eq!(Some(&(place.seq, place.index)), places.get(&event.event_id));
        }
    }
    let length_after = client.ledger_info().await.unwrap().journal_length;
    assert_eq!(
        length_after, length_before,
        "duplicates wrote to the journal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_during_ingestion_count_every_event_once() {
    let mut rng = seeded_rng("TALLY_USAGE_CRASH_SEED");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // Two whole hours ending at least an hour ago: every event is in the past.
    let base = now_ns - now_ns.rem_euclid(HOUR_NS) - 3 * HOUR_NS;

    let event_count = WRITER_COUNT * BATCHES_PER_WRITER * BATCH_EVENTS;
    let events: Vec<UsageEvent> = (0..event_count).map(|number| event(number, base)).collect();
    let expected = expected_usage(event_count);

    let server = start_tallyd(dir.path()).await;
    set_up(&server.client().await.unwrap()).await;
    let (slot, receiver) = watch::channel((0, Some(server.url.clone())));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    // Writer w sends batches w, w + WRITER_COUNT, ...
    let batches: Vec<Vec<UsageEvent>> = events.chunks(BATCH_EVENTS).map(<[_]>::to_vec).collect();
    let mut writers = Vec::new();
    for first in 0..WRITER_COUNT {
        let own = batches
            .iter()
            .skip(first)
            .step_by(WRITER_COUNT)
            .cloned()
            .collect();
        let task = writer(own, receiver.clone(), Arc::clone(&acknowledged));
        writers.push(tokio::spawn(task));
    }
    let server = kill_and_restart(
        server,
        &KillSchedule {
            kills: KILLS,
            after_min: 2,
            after_spread: KILL_AFTER_BATCHES_SPREAD,
            pause_ms_max: 40,
            poll: Duration::from_millis(2),
            total: WRITER_COUNT * BATCHES_PER_WRITER,
            unit: "batches",
        },
        &mut rng,
        &slot,
        &acknowledged,
    )
    .await;
    let mut logs = Vec::new();
    for task in writers {
        logs.extend(task.await.unwrap());
    }
    let resent = logs.iter().filter(|log| log.attempts > 1).count();
    let (places, recorded_unacknowledged) = assert_answers(&logs);
    assert_eq!(places.len(), event_count);
    println!(
        "{event_count} events in {} batches; {resent} batches were sent again, and {} of \
         their events had been recorded by an attempt whose answer was lost",
        logs.len(),
        recorded_unacknowledged
    );

    let client = server.client().await.unwrap();
    assert_usage(&client, base, &expected).await;
    assert_resend_changes_nothing(&client, &places, &events).await;
    assert_usage(&client, base, &expected).await;
    drop(client);

    tokio::task::spawn_blocking(move || server.terminate_and_verify())
        .await
        .unwrap();
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}
