// Goal: the `tally` command-line client works against a real `tallyd`: the
// quickstart sequence prints the right figures in every output format, and the
// exit codes tell usage errors (2, nothing sent) from refusals and unreachable
// servers (1, `error: CODE` on stderr).

use std::path::Path;
use std::process::{Command, Output};

use tally::Tallyd;

/// Runs `tally ARGS` against the server at `url`.
fn tally(url: &str, args: &[&str]) -> Output {
    Command::new(tally::tally_binary())
        .args(args)
        .env("TALLY_SERVER", url)
        .env_remove("TALLY_API_KEY")
        .output()
        .expect("run tally")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `tally ARGS`, asserts success and returns stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let output = tally(url, args);
    assert!(
        output.status.success(),
        "tally {args:?} exited with {}: {}{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn journal_length(url: &str) -> u64 {
    let info: serde_json::Value = serde_json::from_str(&ok(url, &["info", "--json"])).unwrap();
    info["journal_length"].as_u64().expect("journal_length")
}

fn start(dir: &Path) -> (Tallyd, String) {
    let server = Tallyd::start(dir);
    let url = server.url.clone();
    (server, url)
}

/// The whitespace-separated cells of the table line starting with `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no line for {first} in:\n{table}"));
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn quickstart_prints_the_right_figures() {
    // Goal: currency define, account open x2, tx post, balance, trial balance
    // (table, JSON, CSV) and journal tail agree on one sale of 10.00 USD.
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = start(dir.path());
    let url = url.as_str();
    assert!(ok(url, &["currency", "define", "USD", "--scale", "2"]).contains("USD"));
    ok(
        url,
        &[
            "account",
            "open",
            "assets:cash",
            "--type",
            "asset",
            "--currency",
            "USD",
        ],
    );
    let args = [
        "account",
        "open",
        "revenue:sales",
        "--type",
        "revenue",
        "--currency",
        "USD",
    ];
    ok(url, &args);
    let post = [
        "tx",
        "post",
        "--id",
        "sale-1",
        "--debit",
        "assets:cash=10.00",
        "--credit",
        "revenue:sales=10.00",
        "--description",
        "first sale",
    ];
    let posted = ok(url, &post);
    assert!(posted.contains("sale-1"), "{posted}");
    // The same command again is an idempotent retry: success, nothing new.
    let length = journal_length(url);
    ok(url, &post);
    assert_eq!(journal_length(url), length);

    let balances = ok(url, &["balance", "assets:cash", "revenue:sales"]);
    let cash = row(&balances, "assets:cash");
    assert_eq!(&cash[1..3], ["USD", "10.00"], "{balances}");
    let sales = row(&balances, "revenue:sales");
    assert_eq!(&sales[1..3], ["USD", "10.00"], "{balances}");

    let table = ok(url, &["trial-balance"]);
    assert_eq!(
        row(&table, "assets:cash")[3..5],
        ["10.00", "0.00"],
        "{table}"
    );
    assert_eq!(
        row(&table, "revenue:sales")[3..5],
        ["0.00", "10.00"],
        "{table}"
    );
    assert_eq!(
        row(&table, "TOTAL")[1..],
        ["USD", "10.00", "10.00"],
        "{table}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(url, &["trial-balance", "--json"])).expect("trial balance JSON");
    assert_eq!(json["totals"][0]["currency"], "USD");
    assert_eq!(json["totals"][0]["debit"], "10.00");
    assert_eq!(json["totals"][0]["credit"], "10.00");
    let lines = json["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["account"], "assets:cash");
    assert_eq!(lines[0]["debit"], "10.00");
    assert_eq!(lines[1]["account"], "revenue:sales");
    assert_eq!(lines[1]["credit"], "10.00");

    let csv = ok(url, &["trial-balance", "--csv"]);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("account,type,currency,debit,credit,accounts")
    );
    let rows: Vec<Vec<&str>> = rows.map(|line| line.split(',').collect()).collect();
    assert_eq!(
        rows,
        [
            ["assets:cash", "asset", "USD", "10.00", "0.00", "1"],
            ["revenue:sales", "revenue", "USD", "0.00", "10.00", "1"],
        ]
    );

    let journal = ok(url, &["journal", "tail"]);
    let entries: Vec<&str> = journal.lines().collect();
    assert_eq!(entries.len() as u64, journal_length(url), "{journal}");
    assert!(entries[0].starts_with("0 ") && entries[0].contains("ledger_created"));
    let last = entries.last().unwrap();
    assert!(
        last.contains("transaction_recorded") && last.contains("sale-1"),
        "{last}"
    );
    let from_four = ok(url, &["journal", "tail", "--from", "4"]);
    assert_eq!(from_four.lines().count(), entries.len() - 4);
}

#[test]
fn exit_codes_separate_usage_errors_from_refusals() {
    // Goal: a malformed command exits 2 and sends nothing; a refusal by the
    // ledger exits 1 with `error: CODE` on stderr; so does an unreachable server.
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = start(dir.path());
    let url = url.as_str();
    ok(url, &["currency", "define", "USD", "--scale", "2"]);
    ok(
        url,
        &[
            "account",
            "open",
            "assets:cash",
            "--type",
            "asset",
            "--currency",
            "USD",
        ],
    );
    let length = journal_length(url);

    for usage in [
        &["tx", "post", "--id", "x", "--debit", "assets:cash=1e5"][..],
        &[
            "account",
            "open",
            "assets:bank",
            "--type",
            "cash",
            "--currency",
            "USD",
        ][..],
        &["balance"][..],
        &["no-such-command"][..],
    ] {
        let output = tally(url, usage);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{usage:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(journal_length(url), length, "a usage error sent something");

    let refused = tally(
        url,
        &[
            "tx",
            "post",
            "--id",
            "t1",
            "--debit",
            "assets:cash=1.00",
            "--credit",
            "revenue:x=1.00",
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.starts_with("error: ACCOUNT_NOT_FOUND"), "{message}");
    assert!(
        message.contains("items[0].transaction.postings[1].account"),
        "{message}"
    );

    let missing = tally(url, &["account", "show", "assets:nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("error: ACCOUNT_NOT_FOUND"),
        "{}",
        stderr(&missing)
    );

    let unreachable = tally("http://127.0.0.1:1", &["info"]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr(&unreachable).starts_with("error: "),
        "{}",
        stderr(&unreachable)
    );
}
