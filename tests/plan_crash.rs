// Goal: publishing a plan is exactly-once by content across crashes. Clients
// publish sequences of distinct documents, each for its own plan code, while
// tallyd is SIGKILLed at random moments and restarted on the same data
// directory; a publish without an answer is sent again, unchanged, until one
// comes. A retry of a document that the lost attempt had recorded answers that
// same version with `created: false`; one that was not recorded becomes the
// next version. In the end every acknowledged version holds its document,
// each code's versions are 1..n with no gap and no document twice (in the
// read model and in the journal alike), the current version is each client's
// last document, publishing it again records nothing, and `tallyd verify`
// passes on the stopped data directory.
//
// Client c publishes plan `p{c}`; its document k (0-based) prices the calls
// of a sum meter at k + 1 a unit, so document k must be version k + 1. Kills
// are placed by progress, not by time: after a random number of publishes
// has been acknowledged since the last start, plus a random delay of a few
// milliseconds, so each lands while publishes are in flight. The seed is
// printed; set TALLY_PLAN_CRASH_SEED to replay the schedule.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally::crash::{
    connect_once, kill_and_restart, seeded_rng, start_tallyd, KillSchedule, ServerSlot,
};
use tally_client::{Aggregation, Client, MeterSpec, PlanSpec, PlanVersion};
use tally_core::entry::EntryBody;
use tokio::sync::watch;
use tokio_stream::StreamExt;

const CLIENT_COUNT: usize = 3;
const DOCUMENTS_PER_CLIENT: usize = 100;
const KILLS: usize = 8;
/// Publishes acknowledged since the last start before a kill: 4 to 4 + this - 1.
const KILL_AFTER_PUBLISHES_SPREAD: usize = 16;
const CURRENCY: &str = "USD";
const METER: &str = "api_calls";
/// How long one document may go unacknowledged, retries included.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(120);

fn plan_code(client: usize) -> String {
    format!("p{client}")
}

/// Document `index` of plan `code`: calls at `index + 1` a unit.
fn document(code: &str, index: usize) -> PlanSpec {
    let json = serde_json::json!({
        "code": code,
        "name": format!("Plan {code}"),
        "currency": CURRENCY,
        "interval": { "unit": "monthly", "anchor": "2026-01-01" },
        "charges": [{
            "code": "calls",
            "meter": METER,
            "pricing": { "model": "per_unit", "unit_price": (index + 1).to_string() },
        }],
    });
    let spec: PlanSpec = serde_json::from_value(json).expect("a plan document");
    spec.validate().expect("a valid plan");
    spec
}

/// What a client learnt about one document.
struct PublishLog {
    code: String,
    /// The document's place in its client's sequence (0-based).
    index: usize,
    spec: PlanSpec,
    /// Sends until one was answered (1: answered the first time).
    attempts: u32,
    /// The failures of the attempts before: the server's generation (0 for
    /// the first start, k after kill k) and the error.
    failures: Vec<(u64, String)>,
    /// The answer.
    answer: PlanVersion,
}

/// Publishes `spec` until an answer comes, following the server across
/// restarts; every failure (connection lost, refused, timed out) is retried
/// with the same document.
async fn publish_until_answered(
    code: &str,
    index: usize,
    spec: PlanSpec,
    server: &mut watch::Receiver<ServerSlot>,
    client: &mut Option<(u64, Client)>,
) -> PublishLog {
    let started = Instant::now();
    let mut attempts = 0;
    let mut failures = Vec::new();
    loop {
        assert!(
            started.elapsed() < PUBLISH_DEADLINE,
            "{code} document {index} unanswered after {attempts} attempts: {failures:?}"
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
            match connected.publish_plan(&spec).await {
                Ok(answer) => {
                    return PublishLog {
                        code: code.to_string(),
                        index,
                        spec,
                        attempts,
                        failures,
                        answer,
                    }
                }
                Err(error) => failures.push((generation, error.to_string())),
            }
        }
        // Down, restarting, or this attempt's answer was lost: wait for the
        // next start (or a moment) and send the same document again.
        let _ = tokio::time::timeout(Duration::from_millis(100), server.changed()).await;
    }
}

/// One client: its code's documents in order, each published until answered.
async fn publisher(
    client_index: usize,
    mut server: watch::Receiver<ServerSlot>,
    acknowledged: Arc<AtomicUsize>,
) -> Vec<PublishLog> {
    let code = plan_code(client_index);
    let mut client = None;
    let mut logs = Vec::with_capacity(DOCUMENTS_PER_CLIENT);
    for index in 0..DOCUMENTS_PER_CLIENT {
        let spec = document(&code, index);
        let log = publish_until_answered(&code, index, spec, &mut server, &mut client).await;
        logs.push(log);
        acknowledged.fetch_add(1, Ordering::SeqCst);
    }
    logs
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
    let defined = client.define_meter(&meter, "API calls").await.unwrap();
    assert_eq!(defined.version, 1);
}

/// Each answer is the document's own version: k + 1 for document k, holding
/// exactly the document. A first send creates it; a resend either creates it
/// (the lost attempt recorded nothing) or finds it recorded (`created:
/// false`). Returns how many resends found their document recorded.
fn assert_answers(logs: &[PublishLog]) -> usize {
    let mut recorded_unacknowledged = 0;
    let mut seqs = HashSet::new();
    for log in logs {
        let what = format!("{} document {}", log.code, log.index);
        let answer = &log.answer;
        assert_eq!(answer.code(), log.code, "{what}");
        assert_eq!(
            answer.version as usize,
            log.index + 1,
            "{what} answered as version {} (created: {}, attempts: {}, failures: {:?})",
            answer.version,
            answer.created,
            log.attempts,
            log.failures
        );
        assert_eq!(answer.spec, log.spec, "{what}: the answer's document");
        if !answer.created {
            assert!(
                log.attempts > 1,
                "{what} was not created on its first send: {answer:?}"
            );
            recorded_unacknowledged += 1;
        }
        assert!(
            seqs.insert(answer.seq),
            "{what}: seq {} answered twice",
            answer.seq
        );
    }
    recorded_unacknowledged
}

/// The read model holds, for each code, versions 1..n, version k + 1 being
/// document k with the acknowledged seq; the current version is the last
/// document; every acknowledged version reads back as acknowledged.
async fn assert_plans(client: &Client, logs: &[PublishLog]) {
    for client_index in 0..CLIENT_COUNT {
        let code = plan_code(client_index);
        let acked: BTreeMap<u32, &PublishLog> = logs
            .iter()
            .filter(|log| log.code == code)
            .map(|log| (log.answer.version, log))
            .collect();
        assert_eq!(acked.len(), DOCUMENTS_PER_CLIENT, "{code}: acknowledged");

        let versions = client.list_plans(Some(&code)).await.unwrap();
        let numbers: Vec<u32> = versions.iter().map(|plan| plan.version).collect();
        let expected: Vec<u32> = (1..=DOCUMENTS_PER_CLIENT as u32).collect();
        assert_eq!(numbers, expected, "{code}: versions listed");
        let distinct: HashSet<String> = versions
            .iter()
            .map(|plan| serde_json::to_string(&plan.spec).unwrap())
            .collect();
        assert_eq!(distinct.len(), versions.len(), "{code}: a document twice");
        for listed in &versions {
            let log = acked[&listed.version];
            assert_eq!(listed.spec, log.spec, "{code} v{}: listed", listed.version);
            assert_eq!(listed.seq, log.answer.seq, "{code} v{}", listed.version);
        }

        for (version, log) in &acked {
            let stored = client.get_plan(&code, Some(*version)).await.unwrap();
            assert_eq!(stored.version, *version);
            assert_eq!(stored.spec, log.spec, "{code} v{version}: stored");
            assert_eq!(stored.seq, log.answer.seq, "{code} v{version}: seq");
            assert_eq!(stored.published_at, log.answer.published_at);
        }

        let current = client.get_plan(&code, None).await.unwrap();
        let last = document(&code, DOCUMENTS_PER_CLIENT - 1);
        assert_eq!(current.version, DOCUMENTS_PER_CLIENT as u32, "{code}");
        assert_eq!(current.spec, last, "{code}: the current version");
    }
    let currents = client.list_plans(None).await.unwrap();
    let codes: BTreeSet<String> = currents.iter().map(|p| p.code().to_string()).collect();
    let expected: BTreeSet<String> = (0..CLIENT_COUNT).map(plan_code).collect();
    assert_eq!(codes, expected, "the plans listed");
    for plan in &currents {
        assert_eq!(plan.version, DOCUMENTS_PER_CLIENT as u32, "{}", plan.code());
    }
}

/// The journal holds one `plan_published` entry per (code, version), with
/// versions 1..n in order and no document twice.
async fn assert_journal(client: &Client) {
    let length = client.ledger_info().await.unwrap().journal_length;
    let mut stream = client.follow_journal(0, false).await.unwrap();
    let mut published: BTreeMap<String, Vec<(u32, PlanSpec)>> = BTreeMap::new();
    let mut read = 0;
    while let Some(entry) = stream.next().await {
        let entry = entry.unwrap();
        assert_eq!(entry.seq, read, "gap in the journal");
        read += 1;
        let decoded = tally_core::codec::decode(&entry.canonical).expect("canonical entry");
        if let EntryBody::PlanPublished(body) = decoded.body {
            published
                .entry(body.spec.code.clone())
                .or_default()
                .push((body.version, body.spec));
        }
    }
    assert_eq!(read, length);
    assert_eq!(published.len(), CLIENT_COUNT, "codes in the journal");
    for (code, entries) in &published {
        let versions: Vec<u32> = entries.iter().map(|(version, _)| *version).collect();
        let expected: Vec<u32> = (1..=DOCUMENTS_PER_CLIENT as u32).collect();
        assert_eq!(versions, expected, "{code}: plan_published entries");
        let client_index: usize = code[1..].parse().unwrap();
        assert!(client_index < CLIENT_COUNT, "{code}");
        for (version, spec) in entries {
            let index = *version as usize - 1;
            assert_eq!(
                spec,
                &document(code, index),
                "{code} v{version} in the journal"
            );
        }
    }
}

/// Publishing each code's last document again answers its current version
/// with `created: false` and writes nothing.
async fn assert_republish_changes_nothing(client: &Client) {
    let length_before = client.ledger_info().await.unwrap().journal_length;
    for client_index in 0..CLIENT_COUNT {
        let code = plan_code(client_index);
        let last = document(&code, DOCUMENTS_PER_CLIENT - 1);
        let again = client.publish_plan(&last).await.unwrap();
        assert!(!again.created, "{code} published again: {again:?}");
        assert_eq!(again.version, DOCUMENTS_PER_CLIENT as u32, "{code}");
        assert_eq!(again.spec, last);
    }
    let length_after = client.ledger_info().await.unwrap().journal_length;
    assert_eq!(length_after, length_before, "a retry wrote to the journal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_during_plan_publishing_record_each_document_once() {
    let mut rng = seeded_rng("TALLY_PLAN_CRASH_SEED");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();

    let server = start_tallyd(dir.path()).await;
    set_up(&server.client().await.unwrap()).await;
    let (slot, receiver) = watch::channel((0, Some(server.url.clone())));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for client_index in 0..CLIENT_COUNT {
        let task = publisher(client_index, receiver.clone(), Arc::clone(&acknowledged));
        publishers.push(tokio::spawn(task));
    }
    let server = kill_and_restart(
        server,
        &KillSchedule {
            kills: KILLS,
            after_min: 4,
            after_spread: KILL_AFTER_PUBLISHES_SPREAD,
            pause_ms_max: 6,
            poll: Duration::from_millis(1),
            total: CLIENT_COUNT * DOCUMENTS_PER_CLIENT,
            unit: "publishes",
        },
        &mut rng,
        &slot,
        &acknowledged,
    )
    .await;
    let mut logs = Vec::new();
    for task in publishers {
        logs.extend(task.await.unwrap());
    }

    let resent: Vec<&PublishLog> = logs.iter().filter(|log| log.attempts > 1).collect();
    let recorded_unacknowledged = assert_answers(&logs);
    // Per kill: the publishes in flight when it landed (their first failure
    // was against the server it killed), and those of them it had recorded.
    let mut per_kill: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for log in &resent {
        let (killed, _) = log.failures[0];
        let lost = per_kill.entry(killed + 1).or_default();
        lost.0 += 1;
        lost.1 += usize::from(!log.answer.created);
        for (_, failure) in &log.failures {
            *failures.entry(failure.clone()).or_default() += 1;
        }
    }
    println!(
        "{} documents published; {} answers were lost to {KILLS} kills ({} kills landed \
         mid-publish) and sent again, and {recorded_unacknowledged} of them had been \
         recorded by the attempt whose answer was lost (answered created: false)",
        logs.len(),
        resent.len(),
        per_kill.len(),
    );
    for (kill, (lost, recorded)) in &per_kill {
        println!("  kill {kill}: {lost} answers lost, {recorded} of them recorded");
    }
    for (failure, count) in &failures {
        println!("  {count} x {failure}");
    }

    let client = server.client().await.unwrap();
    assert_plans(&client, &logs).await;
    assert_journal(&client).await;
    assert_republish_changes_nothing(&client).await;
    assert_plans(&client, &logs).await;
    drop(client);

    tokio::task::spawn_blocking(move || server.terminate_and_verify())
        .await
        .unwrap();
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}
