// Goal: the `tally` command-line client works against a real `tallyd`: the
// quickstart sequence prints the right figures in every output format, and the
// exit codes tell usage errors (2, nothing sent) from refusals and unreachable
// servers (1, `error: CODE` on stderr).

use std::path::Path;
use std::process::Output;

use tally::Tallyd;

/// Runs `tally ARGS` against the server at `url`, with the admin key.
fn tally(url: &str, args: &[&str]) -> Output {
    tally::tally_command()
        .args(args)
        .env("TALLY_SERVER", url)
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
fn readme_quickstart_prints_the_right_figures() {
    // Goal: the README's quickstart (currency define, three accounts, a sale, a
    // top-up, an idempotent retry, a pending hold posted in part, balance,
    // trial balance as table, JSON and CSV, journal tail) runs as written and
    // every output shows the same figures.
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
    ok(
        url,
        &[
            "account",
            "open",
            "liabilities:wallet:acme",
            "--type",
            "liability",
            "--currency",
            "USD",
            "--constraint",
            "debits-must-not-exceed-credits",
        ],
    );
    let sale = [
        "tx",
        "post",
        "--id",
        "sale-1",
        "--debit",
        "assets:cash=10.50",
        "--credit",
        "revenue:sales=10.50",
        "--description",
        "first sale",
    ];
    let posted = ok(url, &sale);
    assert!(posted.contains("sale-1"), "{posted}");
    let topup = [
        "--debit",
        "assets:cash=20",
        "--credit",
        "liabilities:wallet:acme=20",
    ];
    ok(
        url,
        &[&["tx", "post", "--id", "topup-1"][..], &topup[..]].concat(),
    );
    // The same command again is an idempotent retry: success, nothing new.
    let length = journal_length(url);
    ok(url, &sale);
    assert_eq!(journal_length(url), length);
    let hold = [
        "--debit",
        "liabilities:wallet:acme=5",
        "--credit",
        "revenue:sales=5",
    ];
    ok(
        url,
        &[
            &["tx", "post", "--id", "hold-1"][..],
            &hold[..],
            &["--pending"][..],
        ]
        .concat(),
    );
    let post = [
        "tx",
        "post-pending",
        "hold-1-post",
        "--pending-id",
        "hold-1",
    ];
    ok(
        url,
        &[&post[..], &["--amount", "3", "--amount", "3"][..]].concat(),
    );

    let balances = ok(
        url,
        &[
            "balance",
            "assets:cash",
            "liabilities:wallet:acme",
            "revenue:sales",
        ],
    );
    // ACCOUNT CURRENCY BALANCE WITH-PENDING DEBITS CREDITS ...
    assert_eq!(
        &row(&balances, "assets:cash")[1..3],
        ["USD", "30.50"],
        "{balances}"
    );
    let wallet = row(&balances, "liabilities:wallet:acme");
    assert_eq!(
        &wallet[1..6],
        ["USD", "17.00", "17.00", "3.00", "20.00"],
        "{balances}"
    );
    assert_eq!(
        &row(&balances, "revenue:sales")[1..3],
        ["USD", "13.50"],
        "{balances}"
    );

    // ACCOUNT TYPE CURRENCY DEBIT CREDIT ACCOUNTS
    let table = ok(url, &["trial-balance"]);
    assert_eq!(
        row(&table, "assets:cash")[3..5],
        ["30.50", "0.00"],
        "{table}"
    );
    assert_eq!(
        row(&table, "liabilities:wallet:acme")[3..5],
        ["0.00", "17.00"],
        "{table}"
    );
    assert_eq!(
        row(&table, "revenue:sales")[3..5],
        ["0.00", "13.50"],
        "{table}"
    );
    assert_eq!(
        row(&table, "TOTAL")[1..],
        ["USD", "30.50", "30.50"],
        "{table}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(url, &["trial-balance", "--json"])).expect("trial balance JSON");
    assert_eq!(json["totals"][0]["currency"], "USD");
    assert_eq!(json["totals"][0]["debit"], "30.50");
    assert_eq!(json["totals"][0]["credit"], "30.50");
    let lines = json["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["account"], "assets:cash");
    assert_eq!(lines[0]["debit"], "30.50");
    assert_eq!(lines[1]["account"], "liabilities:wallet:acme");
    assert_eq!(lines[1]["credit"], "17.00");

    let csv = ok(url, &["trial-balance", "--depth", "1", "--csv"]);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("account,type,currency,debit,credit,accounts")
    );
    let rows: Vec<Vec<&str>> = rows.map(|line| line.split(',').collect()).collect();
    assert_eq!(
        rows,
        [
            ["assets", "asset", "USD", "30.50", "0.00", "1"],
            ["liabilities", "liability", "USD", "0.00", "17.00", "1"],
            ["revenue", "revenue", "USD", "0.00", "13.50", "1"],
        ]
    );

    let journal = ok(url, &["journal", "tail"]);
    let entries: Vec<&str> = journal.lines().collect();
    assert_eq!(entries.len() as u64, journal_length(url), "{journal}");
    assert!(entries[0].starts_with("0 ") && entries[0].contains("ledger_created"));
    let last = entries.last().unwrap();
    assert!(
        last.contains("pending_posted") && last.contains("hold-1-post"),
        "{last}"
    );
    let from_four = ok(url, &["journal", "tail", "--from", "4"]);
    assert_eq!(from_four.lines().count(), entries.len() - 4);

    // README: bad input gets a precise error and changes nothing.
    let length = journal_length(url);
    let bad = [
        "--debit",
        "assets:cash=1.001",
        "--credit",
        "revenue:sales=1.001",
    ];
    let refused = tally(
        url,
        &[&["tx", "post", "--id", "sale-2"][..], &bad[..]].concat(),
    );
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.starts_with("error: AMOUNT_SCALE_EXCEEDED: "),
        "{message}"
    );
    assert!(
        message.contains("(field: items[0].transaction.postings[0].amount)"),
        "{message}"
    );
    // The refusal is recorded (it depends on the currency's scale), so that a
    // retry of sale-2 gets the same answer; no balance moved.
    assert_eq!(journal_length(url), length + 1);
    let after = ok(url, &["balance", "assets:cash", "revenue:sales"]);
    assert_eq!(&row(&after, "assets:cash")[2], "30.50");
    assert_eq!(&row(&after, "revenue:sales")[2], "13.50");
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
