// Goal: invoicing and payments work end to end through the `tally` CLI against a real
// `tallyd`: a currency, a customer, a meter, two plans, a tax table, a billing profile, a
// coupon and a subscription for past months; usage sent with `tally usage send`; a draft
// run that records nothing; January billed (its figures computed by hand below) and
// shown; the invoice rendered as HTML to a file; a partial payment and its status; a second
// run that issues nothing; a downgrade that waits for the period's end; a credit note; the
// ageing of what is owed; an overpayment kept as credit; and refusals that name their field
// and change nothing.

use std::path::Path;
use std::process::Output;

use rust_decimal::Decimal;
use serde_json::Value;
use tally::Tallyd;

/// `pro`: 20.00 a month in advance, and API calls graduated (in arrears): the first 1,000
/// at 0.02, then 0.01.
const PLAN_PRO: &str = r#"
code = "pro"
name = "Pro"
currency = "EUR"
interval = { unit = "monthly", anchor = "2024-01-01" }

[[charges]]
code = "base"
description = "Platform fee"
pricing = { model = "flat", amount = "20.00" }

[[charges]]
code = "api_calls"
description = "API calls"
meter = "api_calls"
pricing = { model = "graduated", tiers = [
  { up_to = "1000", unit_price = "0.02" },
  { unit_price = "0.01" },
] }
"#;

/// `basic`: 10.00 a month, nothing else; a move to it is a downgrade.
const PLAN_BASIC: &str = r#"
code = "basic"
name = "Basic"
currency = "EUR"
interval = { unit = "monthly", anchor = "2024-01-01" }

[[charges]]
code = "base"
pricing = { model = "flat", amount = "10.00" }
"#;

/// German VAT, 19 % on top, each line's tax rounded half up.
const TAXES: &str = r#"
[[taxes]]
code = "vat_de"
country = "DE"
rate = "19"
"#;

const COUPON: &str = r#"
code = "welcome10"
discount = { kind = "percentage", percent = "10" }
duration = { kind = "forever" }
"#;

/// January 2025: acme makes 1,500 + 1,000 = 2,500 API calls; the call of February 1st is
/// February's.
const EVENTS: &str = r#"{"event_id":"j1","customer":"acme","meter":"api_calls","timestamp":"2025-01-03T10:00:00Z","value":"1500"}
{"event_id":"j2","customer":"acme","meter":"api_calls","timestamp":"2025-01-31T23:59:00Z","value":"1000"}
{"event_id":"f1","customer":"acme","meter":"api_calls","timestamp":"2025-02-01T00:00:00Z","value":"99999"}
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

/// Runs `tally ARGS`, asserts its exit code and returns stdout and stderr.
fn run_full(url: &str, args: &[&str], code: i32) -> (String, String) {
    let output = tally(url, args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "tally {args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    (text(&output.stdout), text(&output.stderr))
}

fn run(url: &str, args: &[&str], code: i32) -> String {
    run_full(url, args, code).0
}

fn json(url: &str, args: &[&str], code: i32) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = run(url, &args, code);
    serde_json::from_str(&out).unwrap_or_else(|error| panic!("{error}: {out}"))
}

fn d(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("decimal")
}

/// A JSON string holding a decimal, as a `Decimal` (a number where a string belongs fails).
fn dec(value: &Value) -> Decimal {
    d(value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a decimal string")))
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().expect("UTF-8 temp path").to_string()
}

fn journal_length(url: &str) -> u64 {
    json(url, &["info"], 0)["journal_length"].as_u64().unwrap()
}

/// The key id an entry records: the key of the call that caused it.
fn entry_key_id(url: &str, seq: u64) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = tally::connect(url.to_string()).await.unwrap();
        let entry = client.audit_entry(seq).await.unwrap();
        tally_core::codec::decode(&entry.canonical).unwrap().key_id
    })
}

/// The cells of the first line of `table` starting with `first`.
fn cells(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .find(|line| line.starts_with(first))
        .unwrap_or_else(|| panic!("no {first:?} line in:\n{table}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn set_up(url: &str, dir: &Path) {
    run(url, &["currency", "define", "EUR", "--scale", "2"], 0);
    run(url, &["customer", "create", "acme"], 0);
    run(
        url,
        &["meter", "define", "api_calls", "--aggregation", "sum"],
        0,
    );
    for (name, plan) in [("pro.toml", PLAN_PRO), ("basic.toml", PLAN_BASIC)] {
        let file = write(dir, name, plan);
        run(url, &["plan", "publish", &file], 0);
    }
    let taxes = write(dir, "taxes.toml", TAXES);
    let published = run(url, &["tax", "publish", &taxes], 0);
    assert!(
        published.starts_with("published tax table v1 (1 rules"),
        "{published}"
    );
    let again = run(url, &["tax", "publish", &taxes], 0);
    assert_eq!(again, "unchanged: tax table v1 is current\n");

    let profile = [
        "billing",
        "profile",
        "set",
        "acme",
        "--currency",
        "EUR",
        "--country",
        "DE",
        "--series",
        "T",
        "--tax-id",
        "DE123456789",
    ];
    let set = json(url, &profile, 0);
    assert_eq!(set["created"], true, "{set}");
    let again = run(url, &profile, 0);
    assert!(again.starts_with("unchanged: "), "{again}");
    let shown = json(url, &["billing", "profile", "show", "acme"], 0);
    assert_eq!(
        (
            shown["invoice_series"].as_str(),
            shown["payment_terms_days"].as_u64(),
            shown["timezone"].as_str()
        ),
        (Some("T"), Some(30), Some("UTC"))
    );

    let coupon = write(dir, "welcome10.toml", COUPON);
    let granted = run(
        url,
        &[
            "coupon",
            "grant",
            "grant-1",
            "--customer",
            "acme",
            "--coupon",
            &coupon,
            "--from",
            "2025-01-01",
        ],
        0,
    );
    assert!(
        granted.starts_with("granted coupon welcome10 to acme from 2025-01-01"),
        "{granted}"
    );

    // Since December: the run of January bills the billing date February 1st only.
    let started = json(
        url,
        &[
            "subscription",
            "start",
            "sub-acme",
            "--customer",
            "acme",
            "--plan",
            "pro",
            "--start",
            "2024-12-01",
        ],
        0,
    );
    assert_eq!(started["effective"], "2024-12-01");
    assert_eq!(started["created"], true);

    let events = write(dir, "events.jsonl", EVENTS);
    let sent = json(url, &["usage", "send", &events], 0);
    assert_eq!(sent["recorded"], 3, "{sent}");
}

/// The invoice dated February 1st 2025 (closing January), for acme, by hand:
/// - api_calls in January, 2,500: 1,000 × 0.02 = 20.00 and 1,500 × 0.01 = 15.00, 35.00;
/// - base, in advance for February: the flat 20.00;
/// - subtotal 55.00; welcome10 takes 10 %: 5.50, that is 2.00 and 3.50 of the lines;
/// - VAT 19 % per line after discount: 18.00 × 0.19 = 3.42 and 31.50 × 0.19 = 5.985,
///   rounded half up 5.99; 9.41;
/// - total 49.50 + 9.41 = 58.91.
const TOTAL: &str = "58.91";

/// Bills January and returns the invoice's number.
fn bill_january(url: &str) -> String {
    // A draft shows the figures and records nothing.
    let length = journal_length(url);
    let draft = json(
        url,
        &["billing", "run", "--period", "2025-01", "--draft"],
        0,
    );
    assert_eq!(draft["draft"], true);
    let invoices = draft["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{draft}");
    assert_eq!(invoices[0]["number"], Value::Null);
    assert_eq!(dec(&invoices[0]["total"]), d(TOTAL));
    assert_eq!(journal_length(url), length, "a draft records nothing");

    let (out, _) = run_full(url, &["billing", "run", "--period", "2025-01"], 0);
    assert!(
        out.starts_with("billing run 2025-01-01 to 2025-02-01: 1 invoices, 1 issued by this run\n"),
        "{out}"
    );
    let row = cells(&out, "T-");
    // NUMBER CUSTOMER PERIOD(3 words) CURRENCY TOTAL DUE issued
    assert_eq!(row[1], "acme", "{out}");
    assert_eq!(row[2..5], ["2025-01-01", "to", "2025-02-01"], "{out}");
    assert_eq!((row[5].as_str(), row[6].as_str()), ("EUR", TOTAL), "{out}");
    assert_eq!(row[7], TOTAL, "{out}");
    assert_eq!(row[8], "issued", "{out}");
    let number = row[0].clone();
    assert!(
        number.starts_with("T-") && number.ends_with("-000001"),
        "{number}"
    );
    number
}

fn show_and_render(url: &str, dir: &Path, number: &str) {
    let shown = run(url, &["invoice", "show", number], 0);
    assert!(
        shown.starts_with(&format!("invoice {number}  unpaid\n")),
        "{shown}"
    );
    assert_eq!(cells(&shown, "total "), ["total", TOTAL], "{shown}");
    assert_eq!(cells(&shown, "subtotal "), ["subtotal", "55.00"], "{shown}");
    assert_eq!(
        cells(&shown, "discount welcome10"),
        ["discount", "welcome10", "-5.50"],
        "{shown}"
    );
    assert_eq!(
        cells(&shown, "tax vat_de")[..5],
        ["tax", "vat_de", "(19", "%)", "9.41"],
        "{shown}"
    );

    let invoice = json(url, &["invoice", "show", number], 0);
    assert_eq!(invoice["status"], "unpaid");
    assert_eq!(
        (
            invoice["period_start"].as_str(),
            invoice["period_end"].as_str()
        ),
        (Some("2025-01-01"), Some("2025-02-01"))
    );
    let base = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["charge_code"] == "base")
        .unwrap_or_else(|| panic!("no base line in {invoice}"));
    assert_eq!(
        (base["start"].as_str(), base["end"].as_str()),
        (Some("2025-02-01"), Some("2025-03-01"))
    );
    assert_eq!(dec(&base["total"]), d("21.42"));
    assert_eq!(invoice["tax_id"], "DE123456789");
    assert_eq!(dec(&invoice["outstanding"]), d(TOTAL));
    let api = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["charge_code"] == "api_calls")
        .unwrap_or_else(|| panic!("no api_calls line in {invoice}"));
    assert_eq!(dec(&api["quantity"]), d("2500"));
    assert_eq!(dec(&api["amount"]), d("35.00"));
    assert_eq!(dec(&api["discount"]), d("3.50"));
    assert_eq!(dec(&api["taxes"][0]["amount"]), d("5.99"));
    // The line names the two January events it rated, not February's, and their window.
    assert_eq!(api["usage"]["events"], 2, "{api}");
    assert_eq!(api["usage"]["from"], "2025-01-01T00:00:00Z", "{api}");
    assert_eq!(api["usage"]["to"], "2025-02-01T00:00:00Z", "{api}");
    assert!(
        invoice["usage_journal_length"].as_u64().unwrap() > 0,
        "{invoice}"
    );
    // The run's entries record the key that asked for it (the run outlives its call's task).
    let seq = invoice["seq"].as_u64().unwrap();
    assert_eq!(entry_key_id(url, seq), "00000000000000a1");

    let html = dir.join("invoice.html");
    let html_arg = html.to_str().unwrap();
    let wrote = run(
        url,
        &[
            "invoice", "render", number, "--format", "html", "--out", html_arg,
        ],
        0,
    );
    assert!(
        wrote.starts_with(&format!("wrote invoice {number} as html to ")),
        "{wrote}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains(number), "{page}");
    assert!(page.contains(TOTAL), "{page}");
    let document = run(url, &["invoice", "render", number, "--format", "json"], 0);
    let document: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["invoice"]["number"], number);
    assert_eq!(dec(&document["invoice"]["total"]), d(TOTAL));
    assert_eq!(document["status"], "unpaid");

    let listed = run(url, &["invoice", "list", "--customer", "acme"], 0);
    let row = cells(&listed, number);
    assert_eq!(row[row.len() - 3..], [TOTAL, TOTAL, "unpaid"], "{listed}");
}

/// acme pays 30.00 of 58.91: 28.91 is left, the invoice is partially paid.
fn partial_payment(url: &str, number: &str) {
    let paid = json(
        url,
        &[
            "payment",
            "record",
            "pay-1",
            "--customer",
            "acme",
            "--amount",
            "30.00",
            "--received-on",
            "2025-02-10",
            "--reference",
            "wire 1",
        ],
        0,
    );
    assert_eq!(paid["created"], true, "{paid}");
    assert_eq!(paid["allocations"][0]["invoice_number"], number);
    assert_eq!(dec(&paid["allocations"][0]["amount"]), d("30.00"));
    assert_eq!(dec(&paid["to_credit"]), d("0"));
    // The same payment again is the same payment.
    let again = run(
        url,
        &[
            "payment",
            "record",
            "pay-1",
            "--customer",
            "acme",
            "--amount",
            "30.00",
            "--received-on",
            "2025-02-10",
            "--reference",
            "wire 1",
        ],
        0,
    );
    assert!(
        again.starts_with("already recorded: payment pay-1"),
        "{again}"
    );
    let invoice = json(url, &["invoice", "show", number], 0);
    assert_eq!(invoice["status"], "partially_paid");
    assert_eq!(dec(&invoice["paid"]), d("30.00"));
    assert_eq!(dec(&invoice["outstanding"]), d("28.91"));
    assert_eq!(invoice["payments"][0], "pay-1");

    // More than the invoice owes is refused, naming the allocation; nothing is written.
    let length = journal_length(url);
    let (_, err) = run_full(
        url,
        &[
            "payment",
            "record",
            "pay-2",
            "--customer",
            "acme",
            "--amount",
            "40.00",
            "--received-on",
            "2025-02-11",
            "--allocate",
            &format!("{number}=40.00"),
        ],
        1,
    );
    assert!(err.contains("ALLOCATION_EXCEEDS_OUTSTANDING"), "{err}");
    assert!(err.contains("allocations[0].amount"), "{err}");
    assert_eq!(journal_length(url), length);
}

fn rerun_issues_nothing(url: &str, number: &str) {
    let length = journal_length(url);
    let again = json(url, &["billing", "run", "--period", "2025-01"], 0);
    assert_eq!(again["created"], 0, "{again}");
    let invoices = again["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{again}");
    assert_eq!(invoices[0]["number"], number);
    assert_eq!(invoices[0]["created"], false);
    assert_eq!(journal_length(url), length, "a second run posts nothing");
    let text = run(url, &["billing", "run", "--period", "2025-01"], 0);
    assert!(text.contains("0 issued by this run"), "{text}");
    assert_eq!(cells(&text, number).last().unwrap(), "before", "{text}");

    // basic's 10.00 is less than pro's 20.00: a downgrade asked for on February 15th
    // waits for the end of its billing period, March 1st.
    let changed = run(
        url,
        &[
            "subscription",
            "change",
            "sub-acme",
            "--plan",
            "basic",
            "--on",
            "2025-02-15",
        ],
        0,
    );
    assert!(
        changed.starts_with("subscription sub-acme moves to plan basic on 2025-03-01"),
        "{changed}"
    );
    // Before the last invoiced billing date, a change would rewrite an issued invoice.
    let (_, err) = run_full(
        url,
        &[
            "subscription",
            "change",
            "sub-acme",
            "--plan",
            "basic",
            "--on",
            "2025-01-20",
            "--timing",
            "immediate",
        ],
        1,
    );
    assert!(err.contains("SUBSCRIPTION_CHANGE_INVALID"), "{err}");
    assert!(err.contains("field: on"), "{err}");
}

/// A credit note of 5.00 on the base line (18.00 + 3.42 VAT = 21.42): 23.91 is left.
fn credit_note_and_ageing(url: &str, number: &str) {
    let invoice = json(url, &["invoice", "show", number], 0);
    let base = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .position(|line| line["charge_code"] == "base")
        .unwrap();
    let note = json(
        url,
        &[
            "credit-note",
            "issue",
            number,
            "--id",
            "cn-outage",
            "--line",
            &format!("{base}=5.00"),
            "--reason",
            "outage",
        ],
        0,
    );
    assert!(
        note["number"].as_str().unwrap().starts_with("CN-T-"),
        "{note}"
    );
    assert_eq!(dec(&note["to_invoice"]), d("5.00"));
    let invoice = json(url, &["invoice", "show", number], 0);
    assert_eq!(dec(&invoice["outstanding"]), d("23.91"));
    // A line the invoice does not have is refused with its path.
    let (_, err) = run_full(
        url,
        &[
            "credit-note",
            "issue",
            number,
            "--id",
            "cn-typo",
            "--line",
            "7=1.00",
            "--reason",
            "typo",
        ],
        1,
    );
    assert!(err.contains("lines[0].line"), "{err}");

    // Ten days after the due date, everything owed is 1-30 days late.
    let due: tally_client::Day = invoice["due_on"].as_str().unwrap().parse().unwrap();
    let as_of = tally_client::Day(due.0 + 10).to_string();
    let ageing = json(url, &["ar", "ageing", "--as-of", &as_of], 0);
    assert_eq!(ageing["as_of"], as_of.as_str());
    let row = &ageing["rows"][0];
    assert_eq!(row["customer_id"], "acme");
    assert_eq!(dec(&row["buckets"]["current"]), d("0"));
    assert_eq!(dec(&row["buckets"]["1-30"]), d("23.91"));
    assert_eq!(dec(&row["total"]), d("23.91"));
    let table = run(url, &["ar", "ageing", "--as-of", &as_of], 0);
    assert!(
        table.starts_with(&format!("receivables as of {as_of}\n")),
        "{table}"
    );
    assert_eq!(
        cells(&table, "acme"),
        ["acme", "EUR", "0", "23.91", "0", "0", "0", "23.91"],
        "{table}"
    );
    assert_eq!(cells(&table, "TOTAL").last().unwrap(), "23.91", "{table}");
    // On its due date, it is not late yet.
    let on_due = json(url, &["ar", "ageing", "--as-of", &due.to_string()], 0);
    assert_eq!(dec(&on_due["rows"][0]["buckets"]["current"]), d("23.91"));
}

/// acme pays 30.00 again: 23.91 settles the invoice, 6.09 is kept as credit.
fn overpayment_is_credit(url: &str, number: &str) {
    let paid = json(
        url,
        &[
            "payment",
            "record",
            "pay-3",
            "--customer",
            "acme",
            "--amount",
            "30.00",
            "--received-on",
            "2025-03-01",
        ],
        0,
    );
    assert_eq!(dec(&paid["to_credit"]), d("6.09"), "{paid}");
    assert_eq!(json(url, &["invoice", "show", number], 0)["status"], "paid");
    let credit = run(url, &["credit", "show", "acme"], 0);
    assert_eq!(credit, "acme has 6.09 EUR of credit\n");
    let ageing = run(url, &["ar", "ageing"], 0);
    assert!(ageing.contains("nothing is owed"), "{ageing}");
    // A paid invoice cannot be voided.
    let (_, err) = run_full(url, &["invoice", "void", number, "--reason", "x"], 1);
    assert!(err.contains("INVOICE_NOT_VOIDABLE"), "{err}");
    let ended = run(
        url,
        &["subscription", "end", "sub-acme", "--on", "2025-04-01"],
        0,
    );
    assert!(
        ended.starts_with("subscription sub-acme ends on 2025-04-01"),
        "{ended}"
    );
    // The subscription as read: pro from Dec 1, basic from Mar 1 (the
    // downgrade), the end, and the last billing date invoiced (Feb 1).
    let shown = json(url, &["subscription", "show", "sub-acme"], 0);
    let segments: Vec<(String, String)> = shown[0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["from"].as_str().unwrap().to_string(),
                s["plan_code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        segments,
        vec![
            ("2024-12-01".to_string(), "pro".to_string()),
            ("2025-03-01".to_string(), "basic".to_string())
        ],
        "{shown}"
    );
    assert_eq!(shown[0]["end"], "2025-04-01");
    assert_eq!(shown[0]["invoiced_through"], "2025-02-01", "{shown}");
    let listed = json(url, &["subscription", "list", "--customer", "acme"], 0);
    assert_eq!(listed, shown);
    let (_, err) = run_full(url, &["subscription", "show", "sub-nobody"], 1);
    assert!(err.contains("SUBSCRIPTION_NOT_FOUND"), "{err}");
}

fn bad_input_names_the_field(url: &str, dir: &Path) {
    // Checked here with the ledger's rules: exit 2, nothing sent.
    let bad = write(dir, "bad-coupon.toml", &COUPON.replace("\"10\"", "\"110\""));
    let (_, err) = run_full(
        url,
        &[
            "coupon",
            "grant",
            "g-2",
            "--customer",
            "acme",
            "--coupon",
            &bad,
            "--from",
            "2025-01-01",
        ],
        2,
    );
    assert!(err.contains("discount.percent"), "{err}");
    // Refused by the server, with its code and field: exit 1.
    let (_, err) = run_full(
        url,
        &[
            "billing",
            "profile",
            "set",
            "acme",
            "--currency",
            "EUR",
            "--country",
            "Germany",
            "--series",
            "T",
        ],
        1,
    );
    assert!(err.contains("FIELD_INVALID"), "{err}");
    assert!(err.contains("profile.country"), "{err}");
    let (_, err) = run_full(url, &["invoice", "show", "T-1999-000001"], 1);
    assert!(err.contains("INVOICE_NOT_FOUND"), "{err}");
    let (_, err) = run_full(url, &["billing", "profile", "show", "nobody"], 1);
    assert!(err.contains("BILLING_PROFILE_MISSING"), "{err}");
}

#[test]
fn a_month_is_billed_paid_and_aged_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    // No timed checkpoints: they would grow the journal while the test watches it.
    let config = dir.path().join("tallyd.toml");
    std::fs::write(
        &config,
        "[audit]\ncheckpoint-every-entries = 1000000\ncheckpoint-interval-ms = 3600000\n",
    )
    .unwrap();
    let server = Tallyd::start_with_args(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let url = server.url.as_str();
    set_up(url, dir.path());
    let number = bill_january(url);
    show_and_render(url, dir.path(), &number);
    partial_payment(url, &number);
    rerun_issues_nothing(url, &number);
    credit_note_and_ageing(url, &number);
    overpayment_is_credit(url, &number);
    bad_input_names_the_field(url, dir.path());
}
