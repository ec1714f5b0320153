// Goal: the metering commands of the `tally` CLI work against a real `tallyd`: customers and
// meters are created, a JSON-lines file with a duplicate, a refused event and an unreadable
// line is sent (each problem reported by line, exit 1), the aggregates are exact in the table
// and in JSON (stored and recomputed alike), a resend of the same file is all duplicates with
// the totals unchanged, a late event is listed after its period is closed, and an event's
// proof verifies offline with the ledger's key.

use std::path::Path;
use std::process::{Command, Output};

use rust_decimal::Decimal;
use serde_json::Value;
use tally::Tallyd;

const FROM: &str = "2024-05-01T00:00:00Z";
const TO: &str = "2024-05-02T00:00:00Z";

/// Two events of acme in eu (one a JSON number with more digits than a float holds), one in
/// us with an integer-nanosecond timestamp, one of beta; line 3 is blank, line 5 is not JSON,
/// line 6 repeats line 1, line 7's value is not a decimal.
const EVENTS: &str = r#"{"event_id":"e1","customer":"acme","meter":"api_calls","timestamp":"2024-05-01T12:00:00Z","value":12.50,"properties":{"region":"eu"}}
{"event_id":"e2","customer":"acme","meter":"api_calls","timestamp":1714564890000000000,"value":"0.25","properties":{"region":"us"}}

{"event_id":"e3","customer":"beta","meter":"api_calls","timestamp":"2024-05-01T13:00:00+01:00","value":1,"properties":{"region":"eu"}}
this line is not an event
{"event_id":"e1","customer":"acme","meter":"api_calls","timestamp":"2024-05-01T12:00:00Z","value":12.50,"properties":{"region":"eu"}}
{"event_id":"e4","customer":"acme","meter":"api_calls","timestamp":"2024-05-01T12:00:00Z","value":"abc","properties":{"region":"eu"}}
{"event_id":"e5","customer":"acme","meter":"api_calls","timestamp":"2024-05-01T12:05:00Z","value":1.000000000000000000001,"properties":{"region":"eu"}}
"#;

fn tally(url: &str, args: &[&str]) -> Output {
    tally::tally_command()
        .args(args)
        .env("TALLY_SERVER", url)
        .output()
        .expect("run tally")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `tally ARGS`, asserts its exit code and returns stdout.
fn run(url: &str, args: &[&str], code: i32) -> String {
    let output = tally(url, args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "tally {args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn json(url: &str, args: &[&str], code: i32) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = run(url, &args, code);
    serde_json::from_str(&out).unwrap_or_else(|error| panic!("{error}: {out}"))
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn d(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("decimal")
}

/// `(customer, region, count, value)` of each group of a `usage query --json` answer.
fn groups(answer: &Value) -> Vec<(String, String, u64, Decimal)> {
    let groups = answer["groups"].as_array().expect("groups");
    groups
        .iter()
        .map(|group| {
            (
                group["customer"].as_str().unwrap().to_string(),
                group["group"]["region"].as_str().unwrap_or("").to_string(),
                group["count"].as_u64().unwrap(),
                d(group["value"].as_str().expect("value is a string")),
            )
        })
        .collect()
}

/// The whitespace-separated cells of the lines of `table` that start with `first`.
fn rows(table: &str, first: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(first))
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn pubkey(data_dir: &Path) -> String {
    let output = Command::new(tally::tallyd_binary())
        .args(["pubkey", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run tallyd pubkey");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_string()
}

fn expected_by_region() -> Vec<(String, String, u64, Decimal)> {
    vec![
        ("acme".into(), "eu".into(), 2, d("13.500000000000000000001")),
        ("acme".into(), "us".into(), 1, d("0.25")),
        ("beta".into(), "eu".into(), 1, d("1")),
    ]
}

fn set_up(url: &str, dir: &Path) {
    let created = json(
        url,
        &["customer", "create", "acme", "--name", "Acme Corp"],
        0,
    );
    assert_eq!(created["created"], true);
    let again = json(
        url,
        &["customer", "create", "acme", "--name", "Acme Corp"],
        0,
    );
    assert_eq!(again["created"], false);
    run(
        url,
        &["customer", "create", "beta", "--meta", "tier=free"],
        0,
    );
    let customers = json(url, &["customer", "list"], 0);
    let ids: Vec<&str> = customers
        .as_array()
        .unwrap()
        .iter()
        .map(|customer| customer["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "beta"]);

    let defined = run(
        url,
        &[
            "meter",
            "define",
            "api_calls",
            "--aggregation",
            "sum",
            "--group-by",
            "region",
            "--grace-period",
            "86400",
            "--description",
            "API calls",
        ],
        0,
    );
    assert!(
        defined.contains("defined meter api_calls version 1"),
        "{defined}"
    );
    let file = dir.join("users.toml");
    let toml =
        "code = \"active_users\"\naggregation = \"unique_count\"\nvalue_property = \"user\"\n";
    std::fs::write(&file, toml).unwrap();
    run(url, &["meter", "define", "--file", path_arg(&file)], 0);
    let meters = json(url, &["meter", "list"], 0);
    let codes: Vec<(&str, &str)> = meters
        .as_array()
        .unwrap()
        .iter()
        .map(|meter| {
            (
                meter["code"].as_str().unwrap(),
                meter["aggregation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [("active_users", "unique_count"), ("api_calls", "sum")]
    );
}

/// The first send: four events recorded, one duplicate, two problems listed by line.
fn first_send(url: &str, events: &str) {
    let out = run(url, &["usage", "send", events], 1);
    let summary = |name: &str| {
        out.lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    assert_eq!(summary("recorded"), "4", "{out}");
    assert_eq!(summary("duplicates"), "1", "{out}");
    assert_eq!(summary("rejected"), "2", "{out}");
    assert_eq!(rows(&out, "5")[0][1], "(unreadable)", "{out}");
    assert_eq!(
        rows(&out, "7")[0][1..4],
        ["e4", "VALUE_NOT_NUMERIC", "value"],
        "{out}"
    );
}

fn query(url: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "usage",
        "query",
        "--meter",
        "api_calls",
        "--from",
        FROM,
        "--to",
        TO,
    ];
    args.extend_from_slice(extra);
    json(url, &args, 0)
}

fn check_aggregates(url: &str) {
    assert_eq!(
        groups(&query(url, &["--group-by", "region"])),
        expected_by_region()
    );
    let recomputed = query(url, &["--group-by", "region", "--recompute"]);
    assert_eq!(groups(&recomputed), expected_by_region());
    let per_customer = groups(&query(url, &[]));
    assert_eq!(
        per_customer,
        [
            (
                "acme".into(),
                String::new(),
                3,
                d("13.750000000000000000001")
            ),
            ("beta".into(), String::new(), 1, d("1")),
        ]
    );
    let table = run(
        url,
        &[
            "usage",
            "query",
            "--meter",
            "api_calls",
            "--from",
            FROM,
            "--to",
            TO,
            "--group-by",
            "region",
        ],
        0,
    );
    let acme = rows(&table, "acme");
    assert_eq!(acme.len(), 2, "{table}");
    assert_eq!(acme[0][..3], ["acme", "eu", "2"], "{table}");
    assert_eq!(d(&acme[0][3]), d("13.500000000000000000001"), "{table}");
    assert_eq!(rows(&table, "beta")[0][..3], ["beta", "eu", "1"], "{table}");
    let series = query(url, &["--series", "hour", "--customer", "acme"]);
    let buckets = series["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    let used: Vec<&Value> = buckets
        .iter()
        .filter(|bucket| !bucket["groups"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(used.len(), 1, "{series}");
    assert_eq!(used[0]["from"], "2024-05-01T12:00:00Z");
    assert_eq!(used[0]["groups"][0]["count"], 3);
}

#[test]
fn usage_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Tallyd::start(&data);
    let url = server.url.as_str();
    set_up(url, dir.path());
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, EVENTS).unwrap();
    let events = path_arg(&events);

    first_send(url, events);
    check_aggregates(url);

    // The same file again: every event is a duplicate, the same two lines are refused, and
    // no total moves.
    let resent = json(url, &["usage", "send", events], 1);
    assert_eq!(resent["recorded"], 0, "{resent}");
    assert_eq!(resent["duplicates"], 5, "{resent}");
    assert_eq!(resent["rejected"], 2, "{resent}");
    let lines: Vec<u64> = resent["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rejection| rejection["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [5, 7]);
    assert_eq!(resent["rejections"][0]["code"], Value::Null);
    assert_eq!(resent["rejections"][1]["field"], "value");
    check_aggregates(url);

    // A file whose events are all held already exits 0.
    let held = dir.path().join("held.jsonl");
    std::fs::write(&held, EVENTS.lines().next().unwrap()).unwrap();
    let again = json(url, &["usage", "send", path_arg(&held)], 0);
    assert_eq!(again["duplicates"], 1);

    late_event_after_closing(url, dir.path());
    event_proof_verifies_offline(url, &data, dir.path());
}

/// Closing acme's period through the end of the day makes a new event of that day late
/// (the meter's grace is a day): recorded, flagged, listed; the aggregate counts it.
fn late_event_after_closing(url: &str, dir: &Path) {
    let closed = run(
        url,
        &["usage", "close", "--customer", "acme", "--through", TO],
        0,
    );
    assert!(
        closed.contains("closed the usage period of acme"),
        "{closed}"
    );
    // The same close again is a retry (same answer); an earlier end is refused.
    let repeated = run(
        url,
        &["usage", "close", "--customer", "acme", "--through", TO],
        0,
    );
    assert_eq!(repeated, closed);
    run(
        url,
        &["usage", "close", "--customer", "acme", "--through", FROM],
        1,
    );
    let late = dir.join("late.jsonl");
    let event = r#"{"event_id":"late-1","customer":"acme","meter":"api_calls","timestamp":"2024-05-01T18:00:00Z","value":"2","properties":{"region":"us"}}"#;
    std::fs::write(&late, event).unwrap();
    let sent = json(url, &["usage", "send", path_arg(&late)], 0);
    assert_eq!(
        (sent["recorded"].as_u64(), sent["late"].as_u64()),
        (Some(1), Some(1))
    );
    let listed = json(url, &["usage", "late", "--customer", "acme"], 0);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["event"]["event_id"], "late-1");
    assert_eq!(listed[0]["closed_through"], TO);
    let by_region = groups(&query(url, &["--group-by", "region", "--customer", "acme"]));
    assert_eq!(by_region[1], ("acme".into(), "us".into(), 2, d("2.25")));
}

/// prove-event writes a bundle that verify-event accepts with the ledger's key, and refuses
/// once the event's value is changed.
fn event_proof_verifies_offline(url: &str, data: &Path, dir: &Path) {
    let bundle = dir.join("e5.proof.json");
    let written = run(
        url,
        &["audit", "prove-event", "e5", "--out", path_arg(&bundle)],
        0,
    );
    assert!(written.contains("wrote the proof of event e5"), "{written}");
    let vkey = pubkey(data);
    let verified = json(
        url,
        &["audit", "verify-event", path_arg(&bundle), "--key", &vkey],
        0,
    );
    assert_eq!(verified["event"]["event_id"], "e5");
    assert_eq!(verified["event"]["value"], "1.000000000000000000001");
    let mut file: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(file["event"]["timestamp"], 1_714_565_100_000_000_000_i64);
    file["event"]["value"] = Value::String("1.000000000000000000002".into());
    let tampered = dir.join("tampered.json");
    std::fs::write(&tampered, file.to_string()).unwrap();
    let output = tally(
        url,
        &["audit", "verify-event", path_arg(&tampered), "--key", &vkey],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("differs from the proven event"));
}
