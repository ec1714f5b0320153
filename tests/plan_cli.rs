// Goal: the `tally plan` commands work against a real `tallyd`: a TOML plan with a flat fee,
// a graduated charge and a package charge is published (v1), published again (unchanged),
// changed and published (v2); list and show agree, and show's TOML publishes back as
// unchanged; a document with a bad field is refused with its path and records nothing; a
// quote explains its figures (each computed by hand below); and a simulation over usage
// sent with `tally usage send` compares two versions customer by customer.

use std::path::Path;
use std::process::Output;

use rust_decimal::Decimal;
use serde_json::Value;
use tally::Tallyd;

/// Version 1: Stripe's graduated example (units 1-5 at 7, 6-10 at 6.50, 11 and up at 6) and
/// Lago's package example (5 per started 100 units, the first 100 free).
const PLAN_V1: &str = r#"
code = "pro"
name = "Pro"
currency = "USD"
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
  { up_to = "5", unit_price = "7" },
  { up_to = "10", unit_price = "6.50" },
  { unit_price = "6" },
] }

[[charges]]
code = "storage"
description = "Storage, per started 100 GB"
meter = "storage_gb"
free_units = "100"
pricing = { model = "package", size = "100", price = "5" }
"#;

/// The usage of May 2024: acme 12 + 8 = 20 API calls and 201 GB, beta 7 API calls.
const EVENTS: &str = r#"{"event_id":"a1","customer":"acme","meter":"api_calls","timestamp":"2024-05-03T10:00:00Z","value":"12"}
{"event_id":"a2","customer":"acme","meter":"api_calls","timestamp":"2024-05-20T10:00:00Z","value":"8"}
{"event_id":"a3","customer":"acme","meter":"storage_gb","timestamp":"2024-05-31T23:00:00Z","value":"201"}
{"event_id":"b1","customer":"beta","meter":"api_calls","timestamp":"2024-05-10T10:00:00Z","value":"7"}
{"event_id":"x1","customer":"acme","meter":"api_calls","timestamp":"2024-06-01T00:00:00Z","value":"1000"}
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

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn d(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("decimal")
}

/// A JSON string holding a decimal, as a `Decimal` (so `10` and `10.00` compare equal and
/// a number where a string belongs fails).
fn dec(value: &Value) -> Decimal {
    d(value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a decimal string")))
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path_arg(&path).to_string()
}

fn set_up(url: &str) {
    run(url, &["currency", "define", "USD", "--scale", "2"], 0);
    for meter in ["api_calls", "storage_gb"] {
        run(url, &["meter", "define", meter, "--aggregation", "sum"], 0);
    }
    for customer in ["acme", "beta"] {
        run(url, &["customer", "create", customer], 0);
    }
}

/// The `line` whose code is `code` in a rating's JSON.
fn line<'a>(rating: &'a Value, code: &str) -> &'a Value {
    rating["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|line| line["code"] == code)
        .unwrap_or_else(|| panic!("no line {code} in {rating}"))
}

fn publish_list_show(url: &str, dir: &Path) {
    let v1 = write(dir, "pro.toml", PLAN_V1);
    let published = run(url, &["plan", "publish", &v1], 0);
    assert!(
        published.starts_with("published pro v1 (seq "),
        "{published}"
    );
    let again = run(url, &["plan", "publish", &v1], 0);
    assert_eq!(again, "unchanged: pro v1 is current\n");

    // A new price for the units above 10: version 2.
    let v2_text = PLAN_V1.replace(r#"{ unit_price = "6" }"#, r#"{ unit_price = "5.50" }"#);
    assert_ne!(v2_text, PLAN_V1);
    let v2 = write(dir, "pro-v2.toml", &v2_text);
    let published = json(url, &["plan", "publish", &v2], 0);
    assert_eq!(published["created"], true, "{published}");
    assert_eq!(published["version"], 2);
    assert_eq!(published["charges"], 3);
    // The recorded (canonical) document: the same price, normalized.
    assert_eq!(
        dec(&published["plan"]["charges"][1]["pricing"]["tiers"][2]["unit_price"]),
        d("5.50")
    );

    let table = run(url, &["plan", "list"], 0);
    let row: Vec<&str> = table
        .lines()
        .find(|line| line.starts_with("pro "))
        .unwrap_or_else(|| panic!("no pro row in:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..7],
        ["pro", "2", "Pro", "USD", "monthly", "2024-01-01", "3"],
        "{table}"
    );
    let versions = json(url, &["plan", "list", "--code", "pro"], 0);
    let numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|version| version["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);

    // show prints the current version as TOML, which publishes back as unchanged.
    let shown = run(url, &["plan", "show", "pro"], 0);
    assert!(shown.starts_with("# plan pro version 2"), "{shown}");
    let shown_file = write(dir, "shown.toml", &shown);
    let again = run(url, &["plan", "publish", &shown_file], 0);
    assert_eq!(again, "unchanged: pro v2 is current\n");
    let v1_document = json(url, &["plan", "show", "pro", "--version", "1"], 0);
    assert_eq!(
        dec(&v1_document["charges"][1]["pricing"]["tiers"][2]["unit_price"]),
        d("6")
    );
    write(dir, "v1.json", &v1_document.to_string());
}

fn bad_documents_record_nothing(url: &str, dir: &Path) {
    let before = json(url, &["plan", "list", "--code", "pro"], 0);

    // A typo in a key: refused here with the field's path and line, exit 2.
    let typo = PLAN_V1.replace(r#"free_units = "100""#, r#"free_unit = "100""#);
    let typo = write(dir, "typo.toml", &typo);
    let (out, err) = run_full(url, &["plan", "publish", &typo], 2);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("charges[2].free_unit"), "{err}");
    assert!(err.contains("line 26"), "{err}");

    // A rule broken (tiers out of order): refused here with the exact path.
    let unordered = PLAN_V1.replace(r#"up_to = "10""#, r#"up_to = "4""#);
    let unordered = write(dir, "unordered.toml", &unordered);
    let (_, err) = run_full(url, &["plan", "publish", &unordered], 2);
    assert!(err.contains("charges[1].pricing.tiers[1].up_to"), "{err}");

    // What only the ledger knows (the meter does not exist): refused by the server with
    // its code and field, exit 1.
    let unknown_meter = PLAN_V1.replace(r#"meter = "storage_gb""#, r#"meter = "disk_gb""#);
    let unknown_meter = write(dir, "unknown-meter.json.txt", &unknown_meter);
    let (_, err) = run_full(url, &["plan", "publish", &unknown_meter], 1);
    assert!(err.contains("METER_NOT_FOUND"), "{err}");
    assert!(err.contains("charges[2].meter"), "{err}");

    assert_eq!(json(url, &["plan", "list", "--code", "pro"], 0), before);
}

/// Quotes of version 1 for May 2024 (31 days), figures by hand:
/// - base: the flat 20.00 for the whole month;
/// - api_calls, 20 units: 5 × 7 = 35, 5 × 6.50 = 32.50, 10 × 6 = 60; 127.50;
/// - storage, 201 GB less 100 free = 101 billable: 2 started blocks of 100 × 5 = 10.00;
/// - a manual line of 10.00;
/// - subtotal 20.00 + 127.50 + 10.00 + 10.00 = 167.50, no discount, no tax.
fn quote_explains_the_figures(url: &str, dir: &Path) {
    let v1_json = path_arg(&dir.join("v1.json")).to_string();
    // The JSON document `plan show` printed for v1 (not the current version: publishing it
    // would make v3) rates as a draft like the version it came from.
    let draft = json(
        url,
        &[
            "plan",
            "quote",
            "--draft",
            &v1_json,
            "--period",
            "2024-05",
            "--usage",
            "api_calls=20",
        ],
        0,
    );
    assert_eq!(dec(&line(&draft, "api_calls")["amount"]), d("127.50"));
    assert_eq!(draft["plan_version"], 0);
    let quote = json(
        url,
        &[
            "plan",
            "quote",
            "pro@1",
            "--period",
            "2024-05",
            "--usage",
            "api_calls=20",
            "--usage",
            "storage=201",
            "--adjust",
            "setup=10.00",
        ],
        0,
    );
    assert_eq!(
        (quote["plan"].as_str(), quote["plan_version"].as_u64()),
        (Some("pro"), Some(1))
    );
    assert_eq!(quote["period_start"], "2024-05-01");
    assert_eq!(quote["period_end"], "2024-06-01");
    assert_eq!(quote["billing_period_start"], "2024-05-01");

    let base = line(&quote, "base");
    assert_eq!(base["kind"], "charge");
    assert_eq!(base["model"], "flat");
    assert_eq!(dec(&base["amount"]), d("20.00"));

    let calls = line(&quote, "api_calls");
    assert_eq!(dec(&calls["quantity"]), d("20"));
    assert_eq!(dec(&calls["billable_quantity"]), d("20"));
    let tiers: Vec<(Decimal, Decimal, Decimal)> = calls["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tier| {
            (
                dec(&tier["quantity"]),
                dec(&tier["unit_price"]),
                dec(&tier["amount"]),
            )
        })
        .collect();
    assert_eq!(
        tiers,
        [
            (d("5"), d("7"), d("35")),
            (d("5"), d("6.50"), d("32.50")),
            (d("10"), d("6"), d("60")),
        ]
    );
    assert_eq!(calls["tiers"][2]["up_to"], Value::Null);
    assert_eq!(dec(&calls["unrounded"]), d("127.50"));
    assert_eq!(calls["amount"], "127.50");

    let storage = line(&quote, "storage");
    assert_eq!(dec(&storage["free_units"]), d("100"));
    assert_eq!(dec(&storage["billable_quantity"]), d("101"));
    assert_eq!(dec(&storage["package"]["blocks"]), d("2"));
    assert_eq!(dec(&storage["amount"]), d("10"));

    let adjustment = quote["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["kind"] == "adjustment")
        .unwrap_or_else(|| panic!("no adjustment line in {quote}"));
    assert_eq!(dec(&adjustment["amount"]), d("10.00"));

    assert_eq!(dec(&quote["subtotal"]), d("167.50"));
    assert_eq!(dec(&quote["discount_total"]), d("0"));
    assert_eq!(dec(&quote["tax_total"]), d("0"));
    assert_eq!(dec(&quote["net_total"]), d("167.50"));
    assert_eq!(quote["total"], "167.50");
}

/// Version 2 over 2024-05-17 to 2024-06-01 (15 of May's 31 days), 3 API calls, a fixed
/// coupon of 5.00 and German VAT at 19 %, by hand:
/// - base: 20.00 × 15 / 31 = 9.677419... rounded half up: 9.68;
/// - api_calls: 3 × 7 = 21.00; storage: nothing used, 0 blocks: 0.00;
/// - subtotal 30.68, discount 5.00, net 25.68;
/// - tax: 19 % of each line after its share of the discount, rounded per line; however
///   the 5.00 is split (1.57/3.43 or 1.58/3.42), the line taxes are 1.54 and 3.34: 4.88
///   (and 19 % of 25.68 = 4.8792 is 4.88 too);
/// - total 25.68 + 4.88 = 30.56.
fn quote_with_proration_coupon_and_tax(url: &str, dir: &Path) {
    let coupon = write(
        dir,
        "welcome.toml",
        "code = \"welcome\"\ndiscount = { kind = \"fixed\", amount = \"5.00\" }\nduration = { kind = \"once\" }\n",
    );
    let taxes = write(
        dir,
        "taxes.toml",
        "[[taxes]]\ncode = \"vat_de\"\ncountry = \"DE\"\nrate = \"19\"\n",
    );
    let args = [
        "plan",
        "quote",
        "pro",
        "--from",
        "2024-05-17",
        "--to",
        "2024-06-01",
        "--usage",
        "api_calls=3",
        "--coupon",
        &coupon,
        "--tax",
        &taxes,
    ];
    let quote = json(url, &args, 0);
    assert_eq!(quote["plan_version"], 2);
    let base = line(&quote, "base");
    assert_eq!(base["proration"]["days"], 15);
    assert_eq!(base["proration"]["period_days"], 31);
    assert_eq!(dec(&base["proration"]["full_amount"]), d("20.00"));
    assert_eq!(dec(&base["amount"]), d("9.68"));
    let unrounded = dec(&base["unrounded"]);
    assert!(
        (d("9.6774193548") < unrounded) && (unrounded < d("9.6774193549")),
        "{unrounded}"
    );
    assert_eq!(dec(&base["rounding"]), d("9.68") - unrounded);
    assert_eq!(dec(&line(&quote, "api_calls")["amount"]), d("21.00"));
    assert_eq!(dec(&line(&quote, "storage")["amount"]), d("0"));
    assert_eq!(dec(&quote["subtotal"]), d("30.68"));
    assert_eq!(quote["discounts"][0]["coupon"], "welcome");
    assert_eq!(dec(&quote["discounts"][0]["amount"]), d("5.00"));
    assert_eq!(dec(&quote["discount_total"]), d("5.00"));
    assert_eq!(dec(&quote["net_total"]), d("25.68"));
    assert_eq!(quote["tax_mode"], "exclusive");
    assert_eq!(quote["taxes"][0]["code"], "vat_de");
    assert_eq!(dec(&quote["taxes"][0]["taxable"]), d("25.68"));
    assert_eq!(dec(&quote["taxes"][0]["amount"]), d("4.88"));
    assert_eq!(dec(&quote["tax_total"]), d("4.88"));
    assert_eq!(dec(&quote["total"]), d("30.56"));

    // The text form explains the same figures.
    let explained = run(url, &args, 0);
    for expected in [
        "plan pro v2, USD, 2024-05-17 to 2024-06-01 (billing period 2024-05-01 to 2024-06-01)",
        "for 15 of 31 days",
        "discount welcome",
        "tax vat_de (19 %)",
    ] {
        assert!(
            explained.contains(expected),
            "{expected:?} in:\n{explained}"
        );
    }
    let total = explained.lines().last().unwrap();
    assert_eq!(
        total.split_whitespace().collect::<Vec<_>>(),
        ["total", "30.56"]
    );

    // A charge the plan does not have is refused by the server, naming the flag's entry.
    let (_, err) = run_full(
        url,
        &[
            "plan", "quote", "pro", "--period", "2024-05", "--usage", "seats=3",
        ],
        1,
    );
    assert!(err.contains("CHARGE_NOT_FOUND"), "{err}");
}

/// May 2024 re-rated under v2 against v1, by hand (the event of June 1st is outside):
/// - acme, 20 calls and 201 GB: v1 20.00 + 127.50 + 10.00 = 157.50; v2 20.00 + 35 + 32.50
///   + 10 × 5.50 + 10.00 = 152.50; difference -5.00;
/// - beta, 7 calls: v1 = v2 = 20.00 + 35 + 2 × 6.50 = 68.00; difference 0;
/// - totals 225.50 and 220.50, difference -5.00.
///
/// A draft raising the flat fee to 25.00, against the current v2: acme 157.50 (+5.00), beta
/// 73.00 (+5.00), totals 220.50 and 230.50 (+10.00).
fn simulation_compares_versions(url: &str, dir: &Path) {
    let events = write(dir, "events.jsonl", EVENTS);
    let sent = json(url, &["usage", "send", &events], 0);
    assert_eq!(sent["recorded"], 5, "{sent}");

    let simulation = json(
        url,
        &[
            "plan",
            "simulate",
            "--candidate",
            "pro@2",
            "--baseline",
            "pro@1",
            "--period",
            "2024-05",
        ],
        0,
    );
    assert_eq!(simulation["baseline_version"], 1);
    assert_eq!(simulation["candidate_version"], 2);
    assert_eq!(simulation["currency"], "USD");
    let rows: Vec<(String, Decimal, Decimal, Decimal)> = simulation["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|customer| {
            (
                customer["customer"].as_str().unwrap().to_string(),
                dec(&customer["current_total"]),
                dec(&customer["simulated_total"]),
                dec(&customer["difference"]),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("acme".to_string(), d("157.50"), d("152.50"), d("-5.00")),
            ("beta".to_string(), d("68.00"), d("68.00"), d("0")),
        ]
    );
    assert_eq!(dec(&simulation["current_total"]), d("225.50"));
    assert_eq!(dec(&simulation["simulated_total"]), d("220.50"));
    assert_eq!(dec(&simulation["difference"]), d("-5.00"));
    assert!(simulation["customers"][0].get("current").is_none());

    // The table: one row per customer, signed differences, a total row.
    let table = run(
        url,
        &[
            "plan",
            "simulate",
            "--candidate",
            "pro@2",
            "--baseline",
            "pro@1",
            "--period",
            "2024-05",
        ],
        0,
    );
    assert!(
        table.starts_with("baseline pro v1, candidate pro v2, USD, 2024-05-01 to 2024-06-01"),
        "{table}"
    );
    let cells = |first: &str| -> Vec<String> {
        table
            .lines()
            .find(|line| line.starts_with(first))
            .unwrap_or_else(|| panic!("no {first} row in:\n{table}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(cells("acme")[3], "-5.00", "{table}");
    assert_eq!(d(&cells("beta")[3]), d("0"), "{table}");
    assert!(cells("TOTAL").last().unwrap() == "-5.00", "{table}");

    // A draft candidate (not published), against the current version, one customer
    // explained line by line.
    let draft = PLAN_V1
        .replace(r#"{ unit_price = "6" }"#, r#"{ unit_price = "5.50" }"#)
        .replace(r#"amount = "20.00""#, r#"amount = "25.00""#);
    let draft = write(dir, "draft.toml", &draft);
    let simulation = json(url, &["plan", "simulate", &draft, "--period", "2024-05"], 0);
    assert_eq!(simulation["baseline_version"], 2);
    assert_eq!(simulation["candidate_version"], Value::Null);
    assert_eq!(
        dec(&simulation["customers"][0]["simulated_total"]),
        d("157.50")
    );
    assert_eq!(
        dec(&simulation["customers"][1]["simulated_total"]),
        d("73.00")
    );
    assert_eq!(dec(&simulation["difference"]), d("10.00"));
    let explained = json(
        url,
        &[
            "plan",
            "simulate",
            &draft,
            "--from",
            "2024-05-01",
            "--to",
            "2024-06-01",
            "--customer",
            "acme",
            "--explain",
        ],
        0,
    );
    let customers = explained["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 1);
    let current = &customers[0]["current"];
    assert_eq!(dec(&line(current, "api_calls")["amount"]), d("122.50"));
    let simulated = &customers[0]["simulated"];
    assert_eq!(dec(&line(simulated, "base")["amount"]), d("25.00"));
    assert_eq!(
        dec(&line(simulated, "storage")["package"]["blocks"]),
        d("2")
    );
    assert_eq!(
        json(url, &["plan", "list", "--code", "pro"], 0)
            .as_array()
            .unwrap()
            .len(),
        2,
        "a simulated draft is not published"
    );
}

#[test]
fn plans_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Tallyd::start(&dir.path().join("data"));
    let url = server.url.as_str();
    set_up(url);
    publish_list_show(url, dir.path());
    bad_documents_record_nothing(url, dir.path());
    quote_explains_the_figures(url, dir.path());
    quote_with_proration_coupon_and_tax(url, dir.path());
    simulation_compares_versions(url, dir.path());
}
