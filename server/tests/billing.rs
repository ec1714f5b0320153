//! Invoicing and payments through the engine, on real files: a month of
//! billing for three customers (two plans and a mid-month upgrade, a coupon,
//! two tax jurisdictions, prepaid credit), re-runs that post nothing,
//! payments (partial, oldest first, overpayment to credit), a credit note and
//! a void; then the ledger's own figures: the trial balance nets to zero,
//! receivables equal what invoices still owe, revenue per charge equals the
//! invoiced lines less credit notes, and an independent re-derivation of the
//! journal accepts it.
//!
//! Every expected figure is computed by hand in its comment.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use tally_core::billing::{Allocation, BillingProfile, PaymentKind};
use tally_core::calendar::{BillingInterval, Day, IntervalUnit};
use tally_core::decimal::Dec;
use tally_core::entry::AccountType;
use tally_core::error_code::ErrorCode;
use tally_core::meter::{Aggregation, MeterSpec};
use tally_core::plan::{
    Charge, Coupon, CouponDiscount, CouponDuration, FlatTiming, PlanSpec, Pricing, RoundingMode,
    TaxMode, TaxRounding, TaxRule, Tier,
};
use tally_core::usage::UsageEvent;
use tally_server::billing::book::InvoiceStatus;
use tally_server::billing::operations::ChangeTiming;
use tally_server::billing::record::{CreditNoteRequest, PaymentRequest};
use tally_server::error::Error;
use tally_server::ledger::command::CurrencySpec;
use tally_server::ledger::view::AsOf;
use tally_server::metering::ingest::CustomerSpec;
use tally_server::{Engine, EngineConfig};

const HOUR: i64 = 3_600_000_000_000;

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn day(text: &str) -> Day {
    text.parse().unwrap()
}

fn no_progress(_: usize, _: usize) {}

/// A payment request allocated oldest first.
fn pay(
    id: &str,
    customer: &str,
    kind: PaymentKind,
    amount: &str,
    on: &str,
    reference: &str,
) -> PaymentRequest {
    PaymentRequest {
        payment_id: id.into(),
        customer_id: customer.into(),
        kind,
        amount: Dec(dec(amount)),
        received_on: day(on),
        reference: reference.into(),
        allocations: None,
    }
}

/// A fee billed at the end of its period.
fn flat(code: &str, amount: &str) -> Charge {
    let mut charge = advance(code, amount);
    charge.pricing = Pricing::Flat {
        amount: Dec(dec(amount)),
        timing: FlatTiming::InArrears,
    };
    charge
}

/// A fee billed at the start of its period.
fn advance(code: &str, amount: &str) -> Charge {
    Charge {
        code: code.into(),
        description: format!("{code} fee"),
        meter: None,
        group: BTreeMap::new(),
        free_units: Dec::ZERO,
        pricing: Pricing::Flat {
            amount: Dec(dec(amount)),
            timing: FlatTiming::InAdvance,
        },
    }
}

fn plan(code: &str, currency: &str, anchor: &str, charges: Vec<Charge>) -> PlanSpec {
    PlanSpec {
        code: code.into(),
        name: code.into(),
        currency: currency.into(),
        interval: BillingInterval {
            unit: IntervalUnit::Monthly,
            anchor: day(anchor),
        },
        charges,
        minimum_commitment: None,
        rounding: RoundingMode::HalfUp,
    }
}

/// `basic`: 20.00 a month and 0.01 per API call after 1,000 free.
fn basic() -> PlanSpec {
    let mut calls = flat("api", "0");
    calls.meter = Some("api_calls".into());
    calls.free_units = Dec(dec("1000"));
    calls.pricing = Pricing::PerUnit {
        unit_price: Dec(dec("0.01")),
    };
    plan(
        "basic",
        "USD",
        "2026-04-01",
        vec![flat("platform", "20.00"), calls],
    )
}

/// `pro`: 30.00 a month; API calls graduated, 0.01 up to 10,000, then 0.005.
fn pro() -> PlanSpec {
    let mut calls = flat("api", "0");
    calls.meter = Some("api_calls".into());
    calls.pricing = Pricing::Graduated {
        tiers: vec![
            Tier {
                up_to: Some(Dec(dec("10000"))),
                unit_price: Dec(dec("0.01")),
                flat_fee: Dec::ZERO,
            },
            Tier {
                up_to: None,
                unit_price: Dec(dec("0.005")),
                flat_fee: Dec::ZERO,
            },
        ],
    };
    plan(
        "pro",
        "USD",
        "2026-04-01",
        vec![flat("platform", "30.00"), calls],
    )
}

fn tax(code: &str, country: &str, region: Option<&str>, rate: &str) -> TaxRule {
    TaxRule {
        code: code.into(),
        country: country.into(),
        region: region.map(str::to_string),
        rate: Dec(dec(rate)),
        mode: TaxMode::Exclusive,
        rounding: RoundingMode::HalfUp,
        granularity: TaxRounding::PerLine,
    }
}

fn profile(
    customer: &str,
    currency: &str,
    country: &str,
    region: Option<&str>,
    series: &str,
) -> BillingProfile {
    BillingProfile {
        customer_id: customer.into(),
        currency: currency.into(),
        country: country.into(),
        region: region.map(str::to_string),
        tax_id: String::new(),
        timezone: "UTC".into(),
        invoice_series: series.into(),
        payment_terms_days: 30,
    }
}

fn calls(id: &str, customer: &str, at: i64, value: u64) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        customer: customer.into(),
        meter: "api_calls".into(),
        timestamp: at,
        value: Some(value.to_string()),
        properties: BTreeMap::new(),
    }
}

async fn ledger(dir: &std::path::Path) -> Engine {
    let engine = Engine::open(EngineConfig::new(dir)).unwrap();
    let currencies = ["USD", "EUR"]
        .iter()
        .map(|code| CurrencySpec {
            code: code.to_string(),
            scale: 2,
        })
        .collect();
    for result in engine.create_currencies(currencies).await.unwrap() {
        result.unwrap();
    }
    let customers = ["acme", "globex", "initech"]
        .iter()
        .map(|id| CustomerSpec {
            customer_id: id.to_string(),
            name: String::new(),
            metadata: Default::default(),
        })
        .collect();
    for result in engine.create_customers(customers).await.unwrap() {
        result.unwrap();
    }
    engine
        .define_meter(
            MeterSpec {
                code: "api_calls".into(),
                aggregation: Aggregation::Sum,
                value_property: None,
                filters: BTreeMap::new(),
                group_by: Vec::new(),
                grace_period_seconds: 0,
            },
            String::new(),
        )
        .await
        .unwrap();
    engine
}

fn net(engine: &Engine, account: &str) -> Decimal {
    let view = engine.get_account(account).unwrap();
    let minor = view.balance.net_posted(view.account_type);
    Decimal::from_i128_with_scale(minor, u32::from(view.scale))
}

/// 2026-04-01T00:00Z plus `days` days and one hour.
fn april(days: i64) -> i64 {
    day("2026-04-01").start_ns().unwrap() + days * 24 * HOUR + HOUR
}

#[tokio::test]
async fn a_month_of_billing_for_three_customers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path()).await;
    for spec in [
        basic(),
        pro(),
        plan("eu", "EUR", "2026-04-01", vec![flat("platform", "50.00")]),
    ] {
        engine
            .publish_plan(&serde_json::to_string(&spec).unwrap())
            .await
            .unwrap();
    }
    engine
        .publish_tax_rules(vec![
            tax("ca_gst", "CA", None, "5"),
            tax("ca_qc_qst", "CA", Some("CA-QC"), "9.975"),
            tax("de_vat", "DE", None, "19"),
        ])
        .await
        .unwrap();
    for p in [
        profile("acme", "USD", "US", None, "INV"),
        profile("globex", "USD", "CA", Some("CA-QC"), "INV"),
        profile("initech", "EUR", "DE", None, "EU"),
    ] {
        assert!(engine.set_billing_profile(p).await.unwrap().1);
    }
    let start = day("2026-04-01");
    engine
        .subscribe("sub-acme", "acme", "basic", 0, start)
        .await
        .unwrap();
    engine
        .subscribe("sub-globex", "globex", "basic", 0, start)
        .await
        .unwrap();
    engine
        .subscribe("sub-initech", "initech", "eu", 0, start)
        .await
        .unwrap();
    // globex upgrades on the 16th: pro's 30.00 is more than basic's 20.00,
    // so the change is immediate.
    let (effective, _, _) = engine
        .change_plan(
            "sub-globex",
            "pro",
            0,
            day("2026-04-16"),
            ChangeTiming::Auto,
        )
        .await
        .unwrap();
    assert_eq!(effective, day("2026-04-16"));
    engine
        .grant_coupon(
            "grant-1",
            "initech",
            Coupon {
                code: "welcome10".into(),
                discount: CouponDiscount::Percentage {
                    percent: Dec(dec("10")),
                },
                duration: CouponDuration::Forever,
            },
            start,
        )
        .await
        .unwrap();
    // initech buys 20.00 of prepaid credit.
    let (purchase, _) = engine
        .record_payment(pay(
            "pay-initech-prepaid",
            "initech",
            PaymentKind::CreditPurchase,
            "20.00",
            "2026-04-02",
            "wire 1",
        ))
        .await
        .unwrap();
    assert_eq!(purchase.to_credit.0, dec("20.00"));

    // acme: 6,000 calls in April. globex: 3,000 before the 16th, 12,000 after.
    let mut events = vec![
        calls("a1", "acme", april(3), 2_500),
        calls("a2", "acme", april(20), 3_500),
    ];
    events.push(calls("g1", "globex", april(5), 3_000));
    events.push(calls("g2", "globex", april(16), 7_000));
    events.push(calls("g3", "globex", april(29), 5_000));
    // May usage is not April's.
    events.push(calls("a3", "acme", april(30) + 2 * HOUR, 99_999));
    for result in engine
        .ingest_events(events.into_iter().map(Ok).collect())
        .await
        .unwrap()
    {
        result.unwrap();
    }

    // A draft previews without posting.
    let length = engine.journal_length();
    let drafts = engine
        .run_billing(
            None,
            day("2026-04-01"),
            day("2026-05-01"),
            false,
            &no_progress,
        )
        .await
        .unwrap();
    assert_eq!(drafts.len(), 3);
    assert!(drafts.iter().all(|d| d.invoice.number.is_empty()));
    assert_eq!(engine.journal_length(), length);

    let run = engine
        .run_billing(
            None,
            day("2026-04-01"),
            day("2026-05-01"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    let by_customer: BTreeMap<&str, _> = run
        .iter()
        .map(|r| (r.invoice.customer_id.as_str(), &r.invoice))
        .collect();
    assert!(run.iter().all(|r| r.created));

    // acme: 20.00 + (6,000 - 1,000) x 0.01 = 20.00 + 50.00 = 70.00; no US tax.
    let acme = by_customer["acme"];
    assert_eq!(acme.number, "INV-2026-000001");
    assert_eq!(acme.total.0, dec("70.00"));
    assert_eq!(acme.tax.0, dec("0"));
    let api = acme.lines.iter().find(|l| l.charge_code == "api").unwrap();
    assert_eq!(api.quantity.0, dec("6000"));
    // The line names the two April events it rated.
    assert_eq!(api.usage.unwrap().events, 2);

    // globex, basic for Apr 1-16 (15 of 30 days): 20.00 x 15/30 = 10.00, and
    // (3,000 - 1,000) x 0.01 = 20.00; pro for Apr 16-May 1: 30.00 x 15/30 =
    // 15.00, and 10,000 x 0.01 + 2,000 x 0.005 = 110.00. Subtotal 155.00.
    // GST 5 % per line: 0.50 + 1.00 + 0.75 + 5.50 = 7.75. QST 9.975 % per
    // line, half up: 0.9975 -> 1.00, 1.995 -> 2.00, 1.49625 -> 1.50,
    // 10.9725 -> 10.97 = 15.47. Total 155.00 + 23.22 = 178.22.
    let globex = by_customer["globex"];
    assert_eq!(globex.number, "INV-2026-000002");
    let amounts: Vec<(String, Decimal)> = globex
        .lines
        .iter()
        .map(|l| (format!("{}:{}", l.plan_code, l.charge_code), l.amount.0))
        .collect();
    assert_eq!(
        amounts,
        vec![
            ("basic:platform".to_string(), dec("10.00")),
            ("basic:api".to_string(), dec("20.00")),
            ("pro:platform".to_string(), dec("15.00")),
            ("pro:api".to_string(), dec("110.00")),
        ]
    );
    assert_eq!(globex.subtotal.0, dec("155.00"));
    let taxes: BTreeMap<&str, Decimal> = globex
        .taxes
        .iter()
        .map(|t| (t.code.as_str(), t.amount.0))
        .collect();
    assert_eq!(taxes["ca_gst"], dec("7.75"));
    assert_eq!(taxes["ca_qc_qst"], dec("15.47"));
    assert_eq!(globex.total.0, dec("178.22"));
    assert_eq!(globex.lines[3].usage.unwrap().events, 2);

    // initech: 50.00 less 10 % = 45.00; VAT 19 % = 8.55; total 53.55, of
    // which 20.00 prepaid credit: 33.55 due.
    let initech = by_customer["initech"];
    assert_eq!(initech.number, "EU-2026-000001");
    assert_eq!(initech.discount.0, dec("5.00"));
    assert_eq!(initech.tax.0, dec("8.55"));
    assert_eq!(initech.total.0, dec("53.55"));
    assert_eq!(initech.credit_applied.0, dec("20.00"));
    assert_eq!(initech.amount_due.0, dec("33.55"));
    assert_eq!(engine.customer_credit("initech"), dec("0"));

    // Running the month again issues nothing and posts nothing.
    let length = engine.journal_length();
    let again = engine
        .run_billing(
            None,
            day("2026-04-01"),
            day("2026-05-01"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|r| !r.created));
    assert_eq!(engine.journal_length(), length);

    // acme pays 50.00 of 70.00 (oldest first); globex overpays 200.00.
    let (acme_pay, _) = engine
        .record_payment(pay(
            "pay-acme-1",
            "acme",
            PaymentKind::Payment,
            "50.00",
            "2026-05-10",
            "card",
        ))
        .await
        .unwrap();
    assert_eq!(
        acme_pay.allocations,
        vec![Allocation {
            invoice_number: "INV-2026-000001".into(),
            amount: Dec(dec("50.00"))
        }]
    );
    let view = engine.invoice("INV-2026-000001").unwrap();
    assert_eq!(view.status, InvoiceStatus::PartiallyPaid);
    assert_eq!(view.outstanding, dec("20.00"));
    let (globex_pay, _) = engine
        .record_payment(pay(
            "pay-globex-1",
            "globex",
            PaymentKind::Payment,
            "200.00",
            "2026-05-11",
            "wire 2",
        ))
        .await
        .unwrap();
    // 200.00 - 178.22 = 21.78 kept as credit.
    assert_eq!(globex_pay.to_credit.0, dec("21.78"));
    assert_eq!(
        engine.invoice("INV-2026-000002").unwrap().status,
        InvoiceStatus::Paid
    );
    assert_eq!(engine.customer_credit("globex"), dec("21.78"));
    // A retry is the same payment; other content under its id is refused.
    let retry = engine
        .record_payment(pay(
            "pay-globex-1",
            "globex",
            PaymentKind::Payment,
            "200.00",
            "2026-05-11",
            "wire 2",
        ))
        .await
        .unwrap();
    assert!(!retry.1);
    let conflict = engine
        .record_payment(pay(
            "pay-globex-1",
            "globex",
            PaymentKind::Payment,
            "201.00",
            "2026-05-11",
            "wire 2",
        ))
        .await
        .unwrap_err();
    assert!(matches!(conflict, Error::Ledger(ref e) if e.code == ErrorCode::BillingIdExists));

    // A credit note of 5.00 on acme's platform fee (line 0): acme owes 15.00.
    let note = engine
        .issue_credit_note(CreditNoteRequest {
            credit_note_id: "cn-outage".into(),
            invoice_number: "INV-2026-000001".into(),
            reason: "outage".into(),
            lines: vec![(0, dec("5.00"))],
        })
        .await
        .unwrap();
    let (note, created) = note;
    assert!(created);
    assert_eq!(note.number, "CN-INV-2026-000001");
    // A retry under its id is the same note and issues nothing; other
    // content under the id is refused.
    let length = engine.journal_length();
    let (again, created) = engine
        .issue_credit_note(CreditNoteRequest {
            credit_note_id: "cn-outage".into(),
            invoice_number: "INV-2026-000001".into(),
            reason: "outage".into(),
            lines: vec![(0, dec("5.00"))],
        })
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, note);
    assert_eq!(engine.journal_length(), length);
    let other = engine
        .issue_credit_note(CreditNoteRequest {
            credit_note_id: "cn-outage".into(),
            invoice_number: "INV-2026-000001".into(),
            reason: "outage".into(),
            lines: vec![(0, dec("6.00"))],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(other, Error::Ledger(ref e) if e.code == ErrorCode::BillingIdExists && e.field == "credit_note_id")
    );
    assert_eq!(note.to_invoice.0, dec("5.00"));
    assert_eq!(
        engine.invoice("INV-2026-000001").unwrap().outstanding,
        dec("15.00")
    );
    // More than is left on the line is refused and changes nothing.
    let length = engine.journal_length();
    let too_much = engine
        .issue_credit_note(CreditNoteRequest {
            credit_note_id: "cn-again".into(),
            invoice_number: "INV-2026-000001".into(),
            reason: "again".into(),
            lines: vec![(0, dec("15.01"))],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(too_much, Error::Ledger(ref e) if e.code == ErrorCode::CreditExceedsInvoice && e.field == "lines[0].amount")
    );
    assert_eq!(engine.journal_length(), length);
    // A paid invoice cannot be voided.
    let void = engine
        .void_invoice("INV-2026-000002", "mistake")
        .await
        .unwrap_err();
    assert!(matches!(void, Error::Ledger(ref e) if e.code == ErrorCode::InvoiceNotVoidable));

    // The ledger's figures.
    let trial = engine.trial_balance(AsOf::Now, 0, "", None).unwrap();
    let mut per_currency: BTreeMap<&str, i128> = BTreeMap::new();
    for line in &trial.lines {
        *per_currency.entry(line.currency.as_str()).or_default() += line.debit_minus_credit;
    }
    assert!(per_currency.values().all(|v| *v == 0), "{per_currency:?}");
    // Receivables: acme 15.00 (USD), initech 33.55 (EUR).
    assert_eq!(net(&engine, "assets:receivable:usd"), dec("15.00"));
    assert_eq!(net(&engine, "assets:receivable:eur"), dec("33.55"));
    let owed: Decimal = engine
        .invoices(None)
        .iter()
        .filter(|v| v.invoice.currency == "USD")
        .map(|v| v.outstanding)
        .sum();
    assert_eq!(owed, dec("15.00"));
    // Revenue per charge: basic's platform fee 20.00 (acme) + 10.00 (globex)
    // less the 5.00 credited; the EUR platform fee 50.00 gross, its 5.00
    // discount on the contra account.
    assert_eq!(net(&engine, "revenue:basic:platform"), dec("25.00"));
    assert_eq!(net(&engine, "revenue:basic:api"), dec("70.00"));
    assert_eq!(net(&engine, "revenue:pro:api"), dec("110.00"));
    assert_eq!(net(&engine, "revenue:eu:platform"), dec("50.00"));
    assert_eq!(net(&engine, "revenue:discounts:eur"), dec("-5.00"));
    assert_eq!(net(&engine, "liabilities:tax:ca_gst:usd"), dec("7.75"));
    assert_eq!(net(&engine, "liabilities:tax:de_vat:eur"), dec("8.55"));
    assert_eq!(
        net(&engine, "liabilities:customer_credit:usd"),
        dec("21.78")
    );
    assert_eq!(net(&engine, "liabilities:customer_credit:eur"), dec("0"));
    // Cash: 20.00 EUR; 50.00 + 200.00 USD.
    assert_eq!(net(&engine, "assets:cash:usd"), dec("250.00"));
    assert_eq!(
        engine
            .get_account("assets:receivable:usd")
            .unwrap()
            .account_type,
        AccountType::Asset
    );

    // Ageing, ten days after the invoices' due date: all 1-30 days late.
    let due = engine.invoice("INV-2026-000001").unwrap().invoice.due_on;
    let ageing = engine.ageing(Day(due.0 + 10));
    let acme_row = ageing.iter().find(|r| r.customer_id == "acme").unwrap();
    assert_eq!(acme_row.buckets[1], dec("15.00"));
    assert_eq!(acme_row.total, dec("15.00"));
    let before_due = engine.ageing(due);
    assert_eq!(
        before_due
            .iter()
            .find(|r| r.customer_id == "acme")
            .unwrap()
            .buckets[0],
        dec("15.00")
    );

    // The page a customer reads: lines, tax, totals, what is owed.
    let page = engine.invoice_html("EU-2026-000001").unwrap();
    for text in [
        "Invoice EU-2026-000001",
        "welcome10",
        "de_vat",
        "53.55 EUR",
        "-20.00 EUR",
        "33.55 EUR",
    ] {
        assert!(page.contains(text), "{text} missing from the page");
    }
    let page = engine.invoice_html("INV-2026-000002").unwrap();
    assert!(
        page.contains("tier 0 to 10000: 10000 × 0.01 = 100"),
        "{page}"
    );
    assert!(page.contains("15 of 30 days of 20"));
    assert!(page.contains("rated 2 usage events"));

    // Credit: globex's 21.78 applied to nothing owed is refused; refunded in
    // part, it shrinks; more than it is refused.
    let nothing_owed = engine
        .record_payment(pay(
            "apply-globex",
            "globex",
            PaymentKind::CreditApplied,
            "5.00",
            "2026-05-12",
            "",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(nothing_owed, Error::Ledger(ref e) if e.code == ErrorCode::AllocationExceedsOutstanding)
    );
    engine
        .record_payment(pay(
            "refund-globex",
            "globex",
            PaymentKind::Refund,
            "10.00",
            "2026-05-12",
            "wire back",
        ))
        .await
        .unwrap();
    assert_eq!(engine.customer_credit("globex"), dec("11.78"));
    let too_much = engine
        .record_payment(pay(
            "refund-globex-2",
            "globex",
            PaymentKind::Refund,
            "11.79",
            "2026-05-12",
            "",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(too_much, Error::Ledger(ref e) if e.code == ErrorCode::CustomerCreditInsufficient && e.field == "amount")
    );
    // An amount beyond what the ledger holds is an overflow, not a scale error.
    let huge = engine
        .record_payment(pay(
            "pay-huge",
            "acme",
            PaymentKind::Payment,
            "792281625142643375935439504",
            "2026-05-12",
            "",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(huge, Error::Ledger(ref e) if e.code == ErrorCode::AmountOverflow && e.field == "amount"),
        "{huge:?}"
    );
    // An allocation above what an invoice owes names its place.
    let over = engine
        .record_payment(PaymentRequest {
            payment_id: "pay-acme-2".into(),
            customer_id: "acme".into(),
            kind: PaymentKind::Payment,
            amount: Dec(dec("100.00")),
            received_on: day("2026-05-12"),
            reference: String::new(),
            allocations: Some(vec![Allocation {
                invoice_number: "INV-2026-000001".into(),
                amount: Dec(dec("15.01")),
            }]),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(over, Error::Ledger(ref e) if e.code == ErrorCode::AllocationExceedsOutstanding && e.field == "allocations[0].amount")
    );
    // acme is granted 15.00 of credit and applies it: its invoice is paid.
    engine
        .record_payment(pay(
            "grant-acme",
            "acme",
            PaymentKind::CreditGrant,
            "15.00",
            "2026-05-12",
            "goodwill",
        ))
        .await
        .unwrap();
    let (applied, _) = engine
        .record_payment(pay(
            "apply-acme",
            "acme",
            PaymentKind::CreditApplied,
            "15.00",
            "2026-05-12",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(applied.allocations[0].amount.0, dec("15.00"));
    assert_eq!(
        engine.invoice("INV-2026-000001").unwrap().status,
        InvoiceStatus::Paid
    );
    assert_eq!(net(&engine, "assets:receivable:usd"), dec("0"));
    assert_eq!(net(&engine, "expenses:credit_grants:usd"), dec("15.00"));
    assert_eq!(net(&engine, "assets:cash:usd"), dec("240.00"));

    // The journal, re-derived independently, balances; a restart folds the
    // same book.
    let mut rederiver = tally_audit::rederive::Rederiver::new();
    let length = engine.journal_length();
    for seq in 0..length {
        let record = engine.journal_entry(seq).unwrap();
        rederiver.apply(&record.entry).unwrap();
    }
    rederiver.finish().unwrap();
    let before: Vec<_> = engine.invoices(None);
    engine.shutdown().await;
    drop(engine);
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(engine.invoices(None), before);
    assert_eq!(engine.customer_credit("globex"), dec("11.78"));
}

/// Kill Bill's example set up: plans `twenty` ($20) and `thirty` ($30),
/// monthly from Apr 11 and billed in advance, and acme subscribed to
/// `twenty` from Apr 11.
async fn twenty_from_april_11(dir: &std::path::Path) -> Engine {
    let engine = ledger(dir).await;
    for (code, fee) in [("twenty", "20"), ("thirty", "30")] {
        let spec = plan(code, "USD", "2026-04-11", vec![advance("platform", fee)]);
        engine
            .publish_plan(&serde_json::to_string(&spec).unwrap())
            .await
            .unwrap();
    }
    engine
        .set_billing_profile(profile("acme", "USD", "US", None, "KB"))
        .await
        .unwrap();
    engine
        .subscribe("sub-1", "acme", "twenty", 0, day("2026-04-11"))
        .await
        .unwrap();
    engine
}

#[tokio::test]
async fn kill_bill_upgrade_credits_the_unused_days() {
    // Kill Bill's example: a $20 monthly plan billed in advance from Apr 11,
    // upgraded on Apr 26 to a $30 plan. The period Apr 11 - May 11 has 30
    // days, 15 left on Apr 26: a credit of 20 x 15/30 = 10.00 for the unused
    // days and a charge of 30 x 15/30 = 15.00 for the rest of the period.
    let dir = tempfile::tempdir().unwrap();
    let engine = twenty_from_april_11(dir.path()).await;
    // Apr 11: the first period billed in advance.
    let first = engine
        .run_billing(
            None,
            day("2026-04-10"),
            day("2026-04-11"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].invoice.total.0, dec("20.00"));
    assert_eq!(first[0].invoice.lines[0].start, day("2026-04-11"));
    assert_eq!(first[0].invoice.lines[0].end, day("2026-05-11"));
    // Apr 26: the upgrade; pro's 30 is more than 20, so it is immediate.
    let (effective, _, _) = engine
        .change_plan("sub-1", "thirty", 0, day("2026-04-26"), ChangeTiming::Auto)
        .await
        .unwrap();
    assert_eq!(effective, day("2026-04-26"));
    let run = engine
        .run_billing(
            None,
            day("2026-04-11"),
            day("2026-05-11"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    let created: Vec<_> = run.iter().filter(|r| r.created).collect();
    assert_eq!(created.len(), 2, "Apr 26 and May 11");
    let repair = &created[0].invoice;
    assert_eq!(repair.period_end, day("2026-04-26"));
    let lines: Vec<(&str, &str, Decimal, Day, Day)> = repair
        .lines
        .iter()
        .map(|l| {
            (
                l.kind.as_str(),
                l.plan_code.as_str(),
                l.amount.0,
                l.start,
                l.end,
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "credit",
                "twenty",
                dec("-10.00"),
                day("2026-04-26"),
                day("2026-05-11")
            ),
            (
                "charge",
                "thirty",
                dec("15.00"),
                day("2026-04-26"),
                day("2026-05-11")
            ),
        ]
    );
    assert_eq!(repair.total.0, dec("5.00"));
    // May 11: the next period, on the new plan, in advance.
    let next = &created[1].invoice;
    assert_eq!(next.period_end, day("2026-05-11"));
    assert_eq!(next.total.0, dec("30.00"));
    // The revenue of the old plan is what its days earned: 20 - 10.
    assert_eq!(net(&engine, "revenue:twenty:platform"), dec("10.00"));
    assert_eq!(net(&engine, "revenue:thirty:platform"), dec("45.00"));
    assert_eq!(net(&engine, "assets:receivable:usd"), dec("55.00"));
    // A downgrade waits for the period's end.
    let (effective, _, _) = engine
        .change_plan("sub-1", "twenty", 0, day("2026-05-20"), ChangeTiming::Auto)
        .await
        .unwrap();
    assert_eq!(effective, day("2026-06-11"));
    // A change before the last invoiced date is refused: a credit note
    // corrects it.
    let refused = engine
        .change_plan(
            "sub-1",
            "thirty",
            0,
            day("2026-05-01"),
            ChangeTiming::Immediate,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Ledger(ref e) if e.code == ErrorCode::SubscriptionChangeInvalid)
    );
}

#[tokio::test]
async fn a_change_known_before_the_run_is_billed_without_a_credit() {
    // The same upgrade recorded before anything was invoiced: Apr 11's
    // invoice bills twenty for Apr 11-26 (10.00), Apr 26's thirty for the
    // rest (15.00); nothing to credit.
    let dir = tempfile::tempdir().unwrap();
    let engine = twenty_from_april_11(dir.path()).await;
    engine
        .change_plan(
            "sub-1",
            "thirty",
            0,
            day("2026-04-26"),
            ChangeTiming::Immediate,
        )
        .await
        .unwrap();
    // The subscription ends on May 1: thirty's May 1-11 is credited then.
    engine
        .end_subscription("sub-1", day("2026-05-01"))
        .await
        .unwrap();
    let run = engine
        .run_billing(
            None,
            day("2026-04-11"),
            day("2026-05-31"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    let totals: Vec<(Day, Decimal)> = run
        .iter()
        .map(|r| (r.invoice.period_end, r.invoice.total.0))
        .collect();
    // 20 x 15/30 = 10.00; 30 x 5/30 = 5.00 (Apr 26 - May 1, the end known).
    assert_eq!(
        totals,
        vec![
            (day("2026-04-11"), dec("10.00")),
            (day("2026-04-26"), dec("5.00"))
        ]
    );
}

#[tokio::test]
async fn an_open_period_is_a_draft_only_and_a_void_reverses() {
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path()).await;
    engine
        .publish_plan(
            &serde_json::to_string(&plan(
                "eu",
                "EUR",
                "2026-04-01",
                vec![flat("platform", "50.00")],
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    engine
        .set_billing_profile(profile("initech", "EUR", "DE", None, "EU"))
        .await
        .unwrap();
    // Without a profile there is no subscription.
    let missing = engine
        .subscribe("sub-x", "acme", "eu", 0, day("2026-04-01"))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::Ledger(ref e) if e.code == ErrorCode::BillingProfileMissing));
    engine
        .subscribe("sub-1", "initech", "eu", 0, day("2026-04-01"))
        .await
        .unwrap();
    // A period that has not ended (far in the future) is not issued.
    let far = engine
        .run_billing(
            None,
            day("2099-01-01"),
            day("2099-02-01"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    assert!(far.is_empty());
    let run = engine
        .run_billing(
            None,
            day("2026-04-01"),
            day("2026-05-01"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    let number = run[0].invoice.number.clone();
    assert_eq!(net(&engine, "assets:receivable:eur"), dec("50.00"));
    engine
        .void_invoice(&number, "wrong customer")
        .await
        .unwrap();
    assert_eq!(engine.invoice(&number).unwrap().status, InvoiceStatus::Void);
    assert_eq!(net(&engine, "assets:receivable:eur"), dec("0"));
    assert_eq!(net(&engine, "revenue:eu:platform"), dec("0"));
    // A voided period may be billed again, with the next number.
    let again = engine
        .run_billing(
            None,
            day("2026-04-01"),
            day("2026-05-01"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].created);
    assert_eq!(again[0].invoice.number, "EU-2026-000002");
}

#[tokio::test]
async fn a_customer_is_billed_on_its_own_days() {
    // A Berlin customer's April runs from Mar 31 22:00 UTC to Apr 30 22:00
    // UTC (summer time, UTC+2): an event at Mar 31 22:30 UTC is April's, one
    // at Apr 30 22:30 UTC is May's. So April's calls are 1 + 10 = 11, where
    // UTC days would count 10 + 100 = 110.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path()).await;
    let mut calls_charge = flat("calls", "0");
    calls_charge.meter = Some("api_calls".into());
    calls_charge.pricing = Pricing::PerUnit {
        unit_price: Dec(dec("1")),
    };
    engine
        .publish_plan(
            &serde_json::to_string(&plan("metered", "EUR", "2026-04-01", vec![calls_charge]))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut berlin = profile("initech", "EUR", "DE", None, "EU");
    berlin.timezone = "Europe/Berlin".into();
    engine.set_billing_profile(berlin).await.unwrap();
    let mut mars = profile("acme", "EUR", "DE", None, "EU");
    mars.timezone = "Mars/Olympus".into();
    let refused = engine.set_billing_profile(mars).await.unwrap_err();
    assert!(matches!(refused, Error::Ledger(ref e) if e.field == "timezone"));
    engine
        .subscribe("sub-1", "initech", "metered", 0, day("2026-04-01"))
        .await
        .unwrap();
    let utc = |text: &str| day(text).start_ns().unwrap();
    let events = vec![
        calls("e1", "initech", utc("2026-03-31") + 22 * HOUR + HOUR / 2, 1),
        calls("e2", "initech", utc("2026-04-15"), 10),
        calls(
            "e3",
            "initech",
            utc("2026-04-30") + 22 * HOUR + HOUR / 2,
            100,
        ),
    ];
    for result in engine
        .ingest_events(events.into_iter().map(Ok).collect())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    let run = engine
        .run_billing(
            None,
            day("2026-04-01"),
            day("2026-05-01"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    let invoice = &run
        .iter()
        .find(|r| r.invoice.period_end == day("2026-05-01"))
        .unwrap()
        .invoice;
    assert_eq!(invoice.lines[0].quantity.0, dec("11"));
    assert_eq!(invoice.lines[0].usage.unwrap().events, 2);
    assert_eq!(invoice.usage_from, utc("2026-03-31") + 22 * HOUR);
    assert_eq!(invoice.usage_to, utc("2026-04-30") + 22 * HOUR);
    // The VAT-free plan: 11 calls at 1.00 (no DE rule published here).
    assert_eq!(invoice.total.0, dec("11.00"));
}

#[tokio::test]
async fn one_run_bills_many_dates_of_a_customer_in_order() {
    // A weekly 10.00 fee (in arrears) from Mon 2026-03-02, with a 5.00
    // `once` coupon and a 10 % coupon for 2 periods: one run over March
    // bills the four weeks ending Mar 9, 16, 23, 30, in that order. The
    // once coupon takes 5.00 off the first; the 10 % coupon applies to the
    // first two (after the 5.00: 0.50 on the first, 1.00 on the second).
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path()).await;
    let mut weekly = plan("weekly", "USD", "2026-03-02", vec![flat("fee", "10.00")]);
    weekly.interval.unit = IntervalUnit::Weekly;
    engine
        .publish_plan(&serde_json::to_string(&weekly).unwrap())
        .await
        .unwrap();
    engine
        .set_billing_profile(profile("acme", "USD", "US", None, "WK"))
        .await
        .unwrap();
    engine
        .subscribe("sub-1", "acme", "weekly", 0, day("2026-03-02"))
        .await
        .unwrap();
    for (id, discount, duration) in [
        (
            "once",
            CouponDiscount::Fixed {
                amount: Dec(dec("5.00")),
            },
            CouponDuration::Once,
        ),
        (
            "ten",
            CouponDiscount::Percentage {
                percent: Dec(dec("10")),
            },
            CouponDuration::Periods { count: 2 },
        ),
    ] {
        engine
            .grant_coupon(
                id,
                "acme",
                Coupon {
                    code: id.into(),
                    discount,
                    duration,
                },
                day("2026-03-01"),
            )
            .await
            .unwrap();
    }
    let run = engine
        .run_billing(
            None,
            day("2026-03-01"),
            day("2026-03-31"),
            true,
            &no_progress,
        )
        .await
        .unwrap();
    let totals: Vec<(Day, Decimal, String)> = run
        .iter()
        .map(|r| {
            (
                r.invoice.period_end,
                r.invoice.total.0,
                r.invoice.number.clone(),
            )
        })
        .collect();
    assert_eq!(
        totals,
        vec![
            (day("2026-03-09"), dec("4.50"), "WK-2026-000001".to_string()),
            (day("2026-03-16"), dec("9.00"), "WK-2026-000002".to_string()),
            (
                day("2026-03-23"),
                dec("10.00"),
                "WK-2026-000003".to_string()
            ),
            (
                day("2026-03-30"),
                dec("10.00"),
                "WK-2026-000004".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn a_run_leaves_the_running_period_open() {
    // A subscription from 40 days ago, monthly from that day: a run up to far
    // in the future issues the ended period's invoice and closes its usage,
    // but not the usage of the period still running, so an event of today is
    // on time, not late.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let today = Day((now / (24 * HOUR)) as i32);
    let start = Day(today.0 - 40);
    let mut calls_charge = flat("calls", "0");
    calls_charge.meter = Some("api_calls".into());
    calls_charge.pricing = Pricing::PerUnit {
        unit_price: Dec(dec("1")),
    };
    let monthly = plan("metered", "USD", &start.to_string(), vec![calls_charge]);
    engine
        .publish_plan(&serde_json::to_string(&monthly).unwrap())
        .await
        .unwrap();
    engine
        .set_billing_profile(profile("acme", "USD", "US", None, "RUN"))
        .await
        .unwrap();
    engine
        .subscribe("sub-1", "acme", "metered", 0, start)
        .await
        .unwrap();
    let run = engine
        .run_billing(None, start, day("2099-01-01"), true, &no_progress)
        .await
        .unwrap();
    assert_eq!(run.len(), 1, "only the ended period is issued");
    let results = engine
        .ingest_events(vec![Ok(calls("now-1", "acme", now - HOUR, 5))])
        .await
        .unwrap();
    let recorded = results.into_iter().next().unwrap().unwrap();
    assert!(!recorded.late, "an event of the running period is not late");
}
