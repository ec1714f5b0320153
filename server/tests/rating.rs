//! Rating through the engine, on real files: plan versions (publish, retry,
//! new version, refusals with their field, restart), quotes with
//! hand-computed totals, the usage a plan's charges read, and simulations of
//! a price change over customers' recorded usage.
//!
//! Every expected figure below is computed by hand in its comment.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use tally_core::calendar::{Day, Period};
use tally_core::error_code::ErrorCode;
use tally_core::meter::{Aggregation, MeterSpec};
use tally_core::plan::{CouponDuration, Pricing};
use tally_core::usage::UsageEvent;
use tally_server::error::Error;
use tally_server::ledger::command::CurrencySpec;
use tally_server::metering::ingest::CustomerSpec;
use tally_server::rating::operations::{
    ChargeQuantity, CouponGrant, PlanChoice, PlanKey, QuoteRequest, SimulateRequest,
};
use tally_server::{Engine, EngineConfig, LedgerError};

/// 2025-01-01T00:00:00Z in ns: the start of the rated month.
const JAN: i64 = 1_735_689_600_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn day(text: &str) -> Day {
    text.parse().unwrap()
}

fn january() -> Period {
    Period {
        start: day("2025-01-01"),
        end: day("2025-02-01"),
    }
}

fn meter(code: &str, aggregation: Aggregation) -> MeterSpec {
    MeterSpec {
        code: code.into(),
        aggregation,
        value_property: (aggregation == Aggregation::UniqueCount).then(|| "user".to_string()),
        filters: BTreeMap::new(),
        group_by: vec!["region".into()],
        grace_period_seconds: 0,
    }
}

/// A ledger with USD (2 places) and EUR, these customers, and the sum meters
/// `api_calls` and `payments` and the count meter `logins` (by region).
async fn ledger(dir: &std::path::Path, customers: &[&str]) -> Engine {
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
    if !customers.is_empty() {
        let specs = customers
            .iter()
            .map(|id| CustomerSpec {
                customer_id: id.to_string(),
                name: String::new(),
                metadata: Default::default(),
            })
            .collect();
        for result in engine.create_customers(specs).await.unwrap() {
            result.unwrap();
        }
    }
    for (code, aggregation) in [
        ("api_calls", Aggregation::Sum),
        ("payments", Aggregation::Sum),
        ("logins", Aggregation::Count),
    ] {
        engine
            .define_meter(meter(code, aggregation), String::new())
            .await
            .unwrap();
    }
    engine
}

fn event(id: &str, customer: &str, meter: &str, at: i64, value: &str, region: &str) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        customer: customer.into(),
        meter: meter.into(),
        timestamp: at,
        value: (!value.is_empty()).then(|| value.to_string()),
        properties: BTreeMap::from([
            ("region".to_string(), region.to_string()),
            ("user".to_string(), "u-1".to_string()),
        ]),
    }
}

async fn ingest(engine: &Engine, events: Vec<UsageEvent>) {
    let results = engine
        .ingest_events(events.into_iter().map(Ok).collect())
        .await
        .unwrap();
    for result in results {
        let recorded = result.unwrap();
        assert!(recorded.counted);
    }
}

/// The `api` plan: monthly from 2025-01-01, a 10.00 platform fee and
/// `unit_price` per API call (every region).
fn api_plan(unit_price: &str, currency: &str) -> String {
    format!(
        r#"{{
            "code": "api",
            "name": "API",
            "currency": "{currency}",
            "interval": {{"unit": "monthly", "anchor": "2025-01-01"}},
            "charges": [
                {{"code": "platform", "pricing": {{"model": "flat", "amount": "10.00"}}}},
                {{"code": "calls", "meter": "api_calls",
                  "pricing": {{"model": "per_unit", "unit_price": "{unit_price}"}}}}
            ]
        }}"#
    )
}

fn ledger_error(error: Error) -> LedgerError {
    match error {
        Error::Ledger(error) => error,
        other => panic!("a ledger error expected: {other}"),
    }
}

/// The code and field of a refused call.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (ErrorCode, String) {
    let error = ledger_error(result.unwrap_err());
    (error.code, error.field)
}

#[tokio::test]
async fn plan_versions_are_published_once_and_then_in_order() {
    // Goal: a new code is version 1; the same document again (even with
    // "0.010" for "0.01") records nothing and answers version 1; a new price
    // is version 2; the currency cannot change; list and get answer the
    // versions; the recorded prices are normalized.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    let first = engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    assert_eq!((first.plan.version, first.created), (1, true));
    assert_eq!(first.plan.spec.code, "api");
    let length = engine.ledger_info().unwrap().journal_length;
    assert_eq!(first.plan.seq + 1, length);

    let retry = engine
        .publish_plan(&api_plan("0.010", "USD"))
        .await
        .unwrap();
    assert_eq!((retry.plan.version, retry.created), (1, false));
    assert_eq!(retry.plan.seq, first.plan.seq);
    assert_eq!(
        engine.ledger_info().unwrap().journal_length,
        length,
        "a retry records nothing"
    );

    let second = engine
        .publish_plan(&api_plan("0.012", "USD"))
        .await
        .unwrap();
    assert_eq!((second.plan.version, second.created), (2, true));
    assert!(second.plan.seq > first.plan.seq);
    assert!(second.plan.published_at > first.plan.published_at);

    assert_eq!(
        refusal(engine.publish_plan(&api_plan("0.012", "EUR")).await),
        (ErrorCode::PlanCurrencyChanged, "currency".to_string())
    );

    let versions = engine.list_plans(Some("api")).unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    let current = engine.list_plans(None).unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].version, 2);
    assert_eq!(engine.get_plan("api", 0).unwrap().version, 2);
    let v1 = engine.get_plan("api", 1).unwrap();
    let Pricing::PerUnit { unit_price } = v1.spec.charges[1].pricing else {
        panic!("per unit expected");
    };
    assert_eq!(unit_price.to_string(), "0.01");
    let Pricing::Flat { amount, .. } = v1.spec.charges[0].pricing else {
        panic!("flat expected");
    };
    assert_eq!(amount.to_string(), "10", "recorded normalized");
    assert_eq!(
        refusal(engine.get_plan("api", 3)),
        (ErrorCode::PlanNotFound, "version".to_string())
    );
    assert_eq!(
        refusal(engine.get_plan("nope", 0)),
        (ErrorCode::PlanNotFound, "code".to_string())
    );
    assert_eq!(
        refusal(engine.list_plans(Some("nope"))),
        (ErrorCode::PlanNotFound, "code".to_string())
    );
    assert_eq!(
        refusal(engine.get_plan("", 0)),
        (ErrorCode::FieldRequired, "code".to_string())
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_bad_plan_is_refused_with_its_field_and_records_nothing() {
    // Goal: each kind of bad document is refused with its code and its place
    // in the document, and none of them records an entry.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    let length = engine.ledger_info().unwrap().journal_length;
    let plan = |charge: &str| {
        format!(
            r#"{{"code": "p", "currency": "USD",
                 "interval": {{"unit": "monthly", "anchor": "2025-01-01"}},
                 "charges": [{charge}]}}"#
        )
    };
    let cases: Vec<(String, ErrorCode, &str)> = vec![
        (
            plan(r#"{"code": "c", "meter": "nope", "pricing": {"model": "per_unit", "unit_price": "1"}}"#),
            ErrorCode::MeterNotFound,
            "charges[0].meter",
        ),
        (
            plan(
                r#"{"code": "c", "meter": "api_calls", "pricing": {"model": "graduated", "tiers": [
                    {"up_to": "10", "unit_price": "1"}, {"up_to": "5", "unit_price": "1"}, {"unit_price": "1"}]}}"#,
            ),
            ErrorCode::FieldInvalid,
            "charges[0].pricing.tiers[1].up_to",
        ),
        (
            plan(r#"{"code": "c", "meter": "api_calls", "free_unit": 3, "pricing": {"model": "per_unit", "unit_price": "1"}}"#),
            ErrorCode::FieldInvalid,
            "charges[0].free_unit",
        ),
        (
            plan(r#"{"code": "c", "meter": "api_calls", "free_units": "lots", "pricing": {"model": "per_unit", "unit_price": "1"}}"#),
            ErrorCode::FieldInvalid,
            "charges[0].free_units",
        ),
        (
            plan(r#"{"code": "c", "meter": "api_calls", "group": {"tier": "gold"}, "pricing": {"model": "per_unit", "unit_price": "1"}}"#),
            ErrorCode::FieldInvalid,
            "charges[0].group",
        ),
        (
            plan(r#"{"code": "c", "meter": "logins", "pricing": {"model": "percentage", "rate": "2.9"}}"#),
            ErrorCode::FieldInvalid,
            "charges[0].meter",
        ),
        (
            plan(r#"{"code": "c", "pricing": {"model": "per_unit", "unit_price": "1"}}"#),
            ErrorCode::FieldRequired,
            "charges[0].meter",
        ),
        (
            plan(r#"{"code": "c", "meter": "api_calls", "pricing": {"model": "per_unit", "unit_price": "-1"}}"#),
            ErrorCode::FieldInvalid,
            "charges[0].pricing.unit_price",
        ),
        (
            plan(r#"{"code": "c", "meter": "api_calls", "pricing": {"model": "per_unit", "unit_price": "1"}}"#)
                .replace("USD", "XYZ"),
            ErrorCode::CurrencyUnknown,
            "currency",
        ),
        (
            plan(r#"{"code": "c", "meter": "api_calls", "pricing": {"model": "per_unit", "unit_price": "1"}}"#)
                .replace(r#""code": "p""#, r#""code": "P""#),
            ErrorCode::FieldInvalid,
            "code",
        ),
        ("{\"code\": ".to_string(), ErrorCode::FieldInvalid, "plan_json"),
        (String::new(), ErrorCode::FieldRequired, "plan_json"),
        // A struct's fields by position would escape the unknown-field check.
        (
            r#"["arr", "", "USD", {"unit": "monthly", "anchor": "2025-01-01"},
                [["c", "", null, {}, "0", {"model": "flat", "amount": "1"}]]]"#
                .to_string(),
            ErrorCode::FieldInvalid,
            "plan_json",
        ),
        // A fractional number may have been rounded on its way in: refused.
        (
            plan(r#"{"code": "c", "meter": "api_calls", "pricing": {"model": "per_unit", "unit_price": 0.5}}"#),
            ErrorCode::FieldInvalid,
            "charges[0].pricing",
        ),
    ];
    for (json, code, field) in cases {
        assert_eq!(
            refusal(engine.publish_plan(&json).await),
            (code, field.to_string()),
            "{json}"
        );
    }
    assert_eq!(engine.ledger_info().unwrap().journal_length, length);
    assert!(engine.list_plans(None).unwrap().is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn plan_versions_survive_a_restart() {
    // Goal: the versions are a fold of the journal: after a restart they are
    // the same, a retry of the current one still records nothing, and the
    // next change is version 3.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    engine.publish_plan(&api_plan("0.02", "USD")).await.unwrap();
    let before = engine.list_plans(Some("api")).unwrap();
    engine.shutdown().await;
    drop(engine);

    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(engine.list_plans(Some("api")).unwrap(), before);
    let retry = engine.publish_plan(&api_plan("0.02", "USD")).await.unwrap();
    assert_eq!((retry.plan.version, retry.created), (2, false));
    let third = engine.publish_plan(&api_plan("0.03", "USD")).await.unwrap();
    assert_eq!((third.plan.version, third.created), (3, true));
    assert_eq!(
        refusal(engine.publish_plan(&api_plan("0.03", "EUR")).await),
        (ErrorCode::PlanCurrencyChanged, "currency".to_string())
    );
    engine.shutdown().await;
}

fn usage(charge: &str, quantity: &str) -> ChargeQuantity {
    ChargeQuantity {
        charge: charge.into(),
        quantity: quantity.into(),
        transactions: Vec::new(),
    }
}

fn quote_of(plan: PlanChoice, usage: Vec<ChargeQuantity>) -> QuoteRequest {
    QuoteRequest {
        plan: Some(plan),
        period_start: "2025-01-01".into(),
        period_end: "2025-02-01".into(),
        usage,
        ..Default::default()
    }
}

fn current(code: &str) -> PlanChoice {
    PlanChoice::Published(PlanKey {
        code: code.into(),
        version: 0,
    })
}

/// Stripe's graduated example: units 1-5 at 7, 6-10 at 6.50, 11 and up at 6.
const SEATS_PLAN: &str = r#"{
    "code": "seats",
    "currency": "USD",
    "interval": {"unit": "monthly", "anchor": "2025-01-01"},
    "charges": [{"code": "seats", "meter": "api_calls", "pricing": {"model": "graduated", "tiers": [
        {"up_to": 5, "unit_price": "7"},
        {"up_to": 10, "unit_price": "6.50"},
        {"unit_price": "6"}
    ]}}]
}"#;

#[tokio::test]
async fn quotes_rate_per_unit_and_graduated_plans() {
    // Goal: a quote rates given quantities under a published version or a
    // draft, with the totals computed by hand; its usage names charges of the
    // plan, and its period is a range of days.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    engine.publish_plan(SEATS_PLAN).await.unwrap();

    // 1,234 calls at 0.01 = 12.34, plus the 10.00 fee: 22.34.
    let rating = engine
        .quote(&quote_of(current("api"), vec![usage("calls", "1234")]))
        .unwrap();
    assert_eq!((rating.plan.as_str(), rating.plan_version), ("api", 1));
    assert_eq!(rating.period, january());
    assert_eq!(rating.billing_period, january());
    assert_eq!(rating.subtotal, dec("22.34"));
    assert_eq!(rating.net_total, dec("22.34"));
    assert_eq!(rating.total, dec("22.34"));
    let calls = rating.lines.iter().find(|l| l.code == "calls").unwrap();
    assert_eq!(calls.amount, dec("12.34"));

    // 20 seats: 5 x 7 = 35 + 5 x 6.50 = 32.50 + 10 x 6 = 60, so 127.50.
    let rating = engine
        .quote(&quote_of(current("seats"), vec![usage("seats", "20")]))
        .unwrap();
    assert_eq!(rating.net_total, dec("127.50"));
    let tiers: Vec<(Decimal, Decimal)> = rating.lines[0]
        .tiers
        .iter()
        .map(|t| (t.quantity, t.amount))
        .collect();
    assert_eq!(
        tiers,
        [
            (dec("5"), dec("35")),
            (dec("5"), dec("32.5")),
            (dec("10"), dec("60"))
        ]
    );

    // The same document as a draft rates the same, as version 0.
    let draft = engine
        .quote(&quote_of(
            PlanChoice::Draft(SEATS_PLAN.to_string()),
            vec![usage("seats", "20")],
        ))
        .unwrap();
    assert_eq!((draft.plan_version, draft.net_total), (0, dec("127.50")));

    // A charge without usage rates zero: only the fee.
    let rating = engine.quote(&quote_of(current("api"), vec![])).unwrap();
    assert_eq!(rating.net_total, dec("10.00"));

    // No period: the billing period containing today.
    let mut today = quote_of(current("api"), vec![]);
    today.period_start.clear();
    today.period_end.clear();
    let rating = engine.quote(&today).unwrap();
    assert_eq!(rating.period, rating.billing_period);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_bad_quote_is_refused_with_its_field() {
    // Goal: an unknown charge, a negative or malformed quantity, a period
    // that is not a range of days or not within one billing period, an
    // unknown plan and a bad draft are each refused with their field.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    let refused = |request: QuoteRequest| refusal(engine.quote(&request));

    assert_eq!(
        refused(quote_of(current("api"), vec![usage("nope", "1")])),
        (ErrorCode::ChargeNotFound, "usage[0].charge".to_string())
    );
    assert_eq!(
        refused(quote_of(current("api"), vec![usage("calls", "-1")])),
        (ErrorCode::QuantityNegative, "usage[0].quantity".to_string())
    );
    assert_eq!(
        refused(quote_of(current("api"), vec![usage("calls", "1e3")])),
        (ErrorCode::FieldInvalid, "usage[0].quantity".to_string())
    );
    assert_eq!(
        refused(quote_of(current("api"), vec![usage("platform", "1")])),
        (ErrorCode::FieldInvalid, "usage[0].charge".to_string())
    );
    let mut request = quote_of(current("api"), vec![]);
    request.period_end = "2025-01-01".into();
    assert_eq!(
        refused(request),
        (ErrorCode::PeriodInvalid, "period_end".to_string())
    );
    let mut request = quote_of(current("api"), vec![]);
    request.period_end.clear();
    assert_eq!(
        refused(request),
        (ErrorCode::PeriodInvalid, "period_end".to_string())
    );
    let mut request = quote_of(current("api"), vec![]);
    request.period_start = "2025-13-01".into();
    assert_eq!(
        refused(request),
        (ErrorCode::FieldInvalid, "period_start".to_string())
    );
    assert_eq!(
        refused(quote_of(current("nope"), vec![])),
        (ErrorCode::PlanNotFound, "plan.published.code".to_string())
    );
    assert_eq!(
        refused(QuoteRequest::default()),
        (ErrorCode::FieldRequired, "plan".to_string())
    );
    let draft = api_plan("0.01", "USD").replace("api_calls", "nope");
    assert_eq!(
        refused(quote_of(PlanChoice::Draft(draft), vec![])),
        (ErrorCode::MeterNotFound, "charges[1].meter".to_string())
    );
    // Rating judges the period: two months are two billing periods.
    let mut request = quote_of(current("api"), vec![]);
    request.period_end = "2025-03-01".into();
    assert_eq!(refused(request).0, ErrorCode::PeriodInvalid);
    engine.shutdown().await;
}

#[tokio::test]
async fn usage_is_gathered_per_charge_over_the_period() {
    // Goal: a charge reads its meter's aggregate for the customer over the
    // period's days only; restricted to its group when it has one; and over
    // all groups together otherwise, which for a max meter is the largest
    // value of all (not a sum of each region's largest). A customer without
    // usage reads zero.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &["acme", "beta"]).await;
    engine
        .define_meter(meter("peak_users", Aggregation::Max), String::new())
        .await
        .unwrap();
    ingest(
        &engine,
        vec![
            event("a1", "acme", "api_calls", JAN + HOUR, "1000", "eu"),
            event("a2", "acme", "api_calls", JAN + 2 * DAY, "500", "us"),
            event("a3", "acme", "api_calls", JAN + 31 * DAY, "700", "eu"),
            event("a4", "acme", "api_calls", JAN - 1, "900", "eu"),
            event("p1", "acme", "peak_users", JAN + HOUR, "5", "eu"),
            event("p2", "acme", "peak_users", JAN + DAY, "7", "us"),
        ],
    )
    .await;
    let plan = tally_server::rating::catalog::parse_plan(
        r#"{"code": "mix", "currency": "USD",
            "interval": {"unit": "monthly", "anchor": "2025-01-01"},
            "charges": [
              {"code": "all", "meter": "api_calls", "pricing": {"model": "per_unit", "unit_price": "1"}},
              {"code": "eu", "meter": "api_calls", "group": {"region": "eu"},
               "pricing": {"model": "per_unit", "unit_price": "1"}},
              {"code": "ap", "meter": "api_calls", "group": {"region": "ap"},
               "pricing": {"model": "per_unit", "unit_price": "1"}},
              {"code": "peak", "meter": "peak_users", "pricing": {"model": "per_unit", "unit_price": "1"}},
              {"code": "fee", "pricing": {"model": "flat", "amount": "1"}}
            ]}"#,
        "plan_json",
    )
    .unwrap();
    let customers = vec!["acme".to_string(), "beta".to_string()];
    let gathered = engine
        .gather_usage(&[&plan], january(), &customers)
        .unwrap();
    assert_eq!(
        gathered.as_of_seq,
        engine.ledger_info().unwrap().journal_length
    );
    let quantity = |customer: &str, charge: &str| gathered.plans[0][customer][charge].quantity;
    // January: 1000 (eu) + 500 (us); a3 is in February, a4 in December.
    assert_eq!(quantity("acme", "all"), dec("1500"));
    assert_eq!(quantity("acme", "eu"), dec("1000"));
    assert_eq!(quantity("acme", "ap"), dec("0"));
    // max(5 in eu, 7 in us) = 7, not 5 + 7.
    assert_eq!(quantity("acme", "peak"), dec("7"));
    assert_eq!(quantity("beta", "all"), dec("0"));
    assert!(!gathered.plans[0]["acme"].contains_key("fee"));
    engine.shutdown().await;
}

/// The `pay` plan: 2.9 % plus 0.30 per payment in region eu.
fn pay_plan(rate: &str) -> String {
    format!(
        r#"{{"code": "pay", "currency": "USD",
            "interval": {{"unit": "monthly", "anchor": "2025-01-01"}},
            "charges": [{{"code": "card_fees", "meter": "payments", "group": {{"region": "eu"}},
                          "pricing": {{"model": "percentage", "rate": "{rate}", "fixed_fee": "0.30"}}}}]}}"#
    )
}

fn simulation(candidate: PlanChoice, customers: &[&str]) -> SimulateRequest {
    SimulateRequest {
        candidate: Some(candidate),
        baseline: None,
        period_start: "2025-01-01".into(),
        period_end: "2025-02-01".into(),
        customers: customers.iter().map(|c| c.to_string()).collect(),
        explain: false,
    }
}

#[tokio::test]
async fn a_price_change_is_simulated_on_recorded_usage() {
    // Goal: customers' recorded January usage (and none outside it) is
    // rated under the current version and under a draft with a higher unit
    // price; each customer's totals, their difference and the sums are the
    // hand-computed ones.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &["acme", "beta", "gamma"]).await;
    ingest(
        &engine,
        vec![
            event("a1", "acme", "api_calls", JAN + HOUR, "1000", "eu"),
            event("a2", "acme", "api_calls", JAN + 10 * DAY, "500", "us"),
            event("a3", "acme", "api_calls", JAN + 31 * DAY, "700", "eu"),
            event("b1", "beta", "api_calls", JAN + 20 * DAY, "2500", "eu"),
            event("b2", "beta", "api_calls", JAN - HOUR, "100", "eu"),
        ],
    )
    .await;
    let v1 = engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    let draft = PlanChoice::Draft(api_plan("0.012", "USD"));

    let result = engine.simulate(&simulation(draft.clone(), &[])).unwrap();
    assert_eq!(result.currency, "USD");
    assert_eq!(
        (result.baseline_plan.as_str(), result.baseline_version),
        ("api", 1)
    );
    assert_eq!(
        (result.candidate_plan.as_str(), result.candidate_version),
        ("api", 0)
    );
    assert_eq!(result.period, january());
    assert_eq!(
        result.as_of_seq,
        engine.ledger_info().unwrap().journal_length
    );
    assert!(result.as_of_seq > v1.plan.seq);
    // acme: 1,500 calls: 15.00 + 10 = 25.00 now, 18.00 + 10 = 28.00 then.
    // beta: 2,500 calls: 25.00 + 10 = 35.00 now, 30.00 + 10 = 40.00 then.
    // gamma: no calls: 10.00 both.
    let rows: Vec<(&str, Decimal, Decimal, Decimal)> = result
        .customers
        .iter()
        .map(|c| {
            (
                c.customer.as_str(),
                c.current_total,
                c.simulated_total,
                c.difference,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("acme", dec("25.00"), dec("28.00"), dec("3.00")),
            ("beta", dec("35.00"), dec("40.00"), dec("5.00")),
            ("gamma", dec("10.00"), dec("10.00"), dec("0.00")),
        ]
    );
    assert_eq!(
        (
            result.current_total,
            result.simulated_total,
            result.difference
        ),
        (dec("70.00"), dec("78.00"), dec("8.00"))
    );
    assert!(result.customers.iter().all(|c| c.current.is_none()));

    // Named customers, with both ratings explained.
    let mut explained = simulation(draft.clone(), &["beta"]);
    explained.explain = true;
    let result = engine.simulate(&explained).unwrap();
    assert_eq!(result.customers.len(), 1);
    let beta = &result.customers[0];
    let calls = |rating: &tally_server::rating::Rating| {
        rating
            .lines
            .iter()
            .find(|l| l.code == "calls")
            .map(|l| (l.quantity, l.amount))
    };
    assert_eq!(
        calls(beta.current.as_ref().unwrap()),
        Some((dec("2500"), dec("25.00")))
    );
    assert_eq!(
        calls(beta.simulated.as_ref().unwrap()),
        Some((dec("2500"), dec("30.00")))
    );

    // A published candidate against a named baseline.
    engine.publish_plan(&api_plan("0.02", "USD")).await.unwrap();
    let mut request = simulation(current("api"), &["acme"]);
    request.baseline = Some(PlanKey {
        code: "api".into(),
        version: 1,
    });
    let result = engine.simulate(&request).unwrap();
    // acme: 1,500 x 0.02 = 30.00 + 10 = 40.00 against 25.00.
    assert_eq!(
        (
            result.candidate_version,
            result.customers[0].simulated_total,
            result.difference
        ),
        (2, dec("40.00"), dec("15.00"))
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_bad_simulation_is_refused_with_its_field() {
    // Goal: an unknown customer, no baseline to compare with, another
    // currency, and a missing or reversed period are each refused.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &["acme"]).await;
    engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    let refused = |request: SimulateRequest| refusal(engine.simulate(&request));
    assert_eq!(
        refused(simulation(current("api"), &["acme", "nobody"])),
        (ErrorCode::CustomerNotFound, "customers[1]".to_string())
    );
    let other = api_plan("0.01", "USD").replace(r#""code": "api""#, r#""code": "other""#);
    assert_eq!(
        refused(simulation(PlanChoice::Draft(other), &[])),
        (ErrorCode::PlanNotFound, "baseline".to_string())
    );
    let euro = api_plan("0.01", "EUR").replace(r#""code": "api""#, r#""code": "euro""#);
    let mut request = simulation(PlanChoice::Draft(euro), &[]);
    request.baseline = Some(PlanKey {
        code: "api".into(),
        version: 0,
    });
    assert_eq!(
        refused(request),
        (ErrorCode::PlanMismatch, "baseline".to_string())
    );
    let mut request = simulation(current("api"), &[]);
    request.period_start.clear();
    request.period_end.clear();
    assert_eq!(
        refused(request),
        (ErrorCode::PeriodInvalid, "period_start".to_string())
    );
    let mut request = simulation(current("api"), &[]);
    request.period_end = "2024-12-01".into();
    assert_eq!(
        refused(request),
        (ErrorCode::PeriodInvalid, "period_end".to_string())
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_percentage_charge_is_simulated_on_each_payment() {
    // Goal: a percentage charge reads each January payment of its group as
    // one transaction (not the period's total), so the fee per payment is
    // applied per event; payments in another region or month are left out.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &["acme"]).await;
    ingest(
        &engine,
        vec![
            event("p1", "acme", "payments", JAN + HOUR, "100.00", "eu"),
            event("p2", "acme", "payments", JAN + 5 * DAY, "50.00", "eu"),
            event("p3", "acme", "payments", JAN + 6 * DAY, "30.00", "us"),
            event("p4", "acme", "payments", JAN + 40 * DAY, "999.00", "eu"),
        ],
    )
    .await;
    engine.publish_plan(&pay_plan("2.9")).await.unwrap();
    let mut request = simulation(PlanChoice::Draft(pay_plan("2.5")), &["acme"]);
    request.explain = true;
    let result = engine.simulate(&request).unwrap();
    let acme = &result.customers[0];
    // Now: 100 x 2.9 % + 0.30 = 3.20 and 50 x 2.9 % + 0.30 = 1.75: 4.95.
    // Then: 100 x 2.5 % + 0.30 = 2.80 and 50 x 2.5 % + 0.30 = 1.55: 4.35.
    assert_eq!(
        (acme.current_total, acme.simulated_total, acme.difference),
        (dec("4.95"), dec("4.35"), dec("-0.60"))
    );
    let detail = acme.current.as_ref().unwrap().lines[0]
        .percentage
        .clone()
        .unwrap();
    assert_eq!((detail.transactions, detail.volume), (2, dec("150")));

    // The usage itself: two transactions, in journal order.
    let plan = engine.get_plan("pay", 0).unwrap().spec;
    let gathered = engine
        .gather_usage(&[&plan], january(), &["acme".to_string()])
        .unwrap();
    let card_fees = &gathered.plans[0]["acme"]["card_fees"];
    assert_eq!(card_fees.transactions, [dec("100"), dec("50")]);
    assert_eq!(card_fees.quantity, dec("150"));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_quote_takes_a_percentage_charges_transactions() {
    // Goal: a quote's transactions are the percentage charge's, and its
    // quantity is their sum (2 x 0.30 + 2.9 % of 150 = 4.95).
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    engine.publish_plan(&pay_plan("2.9")).await.unwrap();
    let given = ChargeQuantity {
        charge: "card_fees".into(),
        quantity: String::new(),
        transactions: vec!["100.00".into(), "50".into()],
    };
    let rating = engine
        .quote(&quote_of(current("pay"), vec![given.clone()]))
        .unwrap();
    assert_eq!(rating.net_total, dec("4.95"));
    let mut wrong_sum = given.clone();
    wrong_sum.quantity = "149".into();
    assert_eq!(
        refusal(engine.quote(&quote_of(current("pay"), vec![wrong_sum]))),
        (ErrorCode::FieldInvalid, "usage[0].quantity".to_string())
    );
    let mut negative = given;
    negative.transactions[1] = "-5".into();
    assert_eq!(
        refusal(engine.quote(&quote_of(current("pay"), vec![negative]))),
        (
            ErrorCode::QuantityNegative,
            "usage[0].transactions[1]".to_string()
        )
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_percentage_charges_quantity_alone_is_refused_not_rated_as_nothing() {
    // Goal: a percentage charge is priced per transaction; a quantity without
    // them would be rated as no transaction at all (a fee of 0, a volume of 0
    // shown for the 150 given), so it is refused like any quantity that is not
    // its transactions' sum. A zero quantity with no transactions is no usage.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    engine.publish_plan(&pay_plan("2.9")).await.unwrap();
    assert_eq!(
        refusal(engine.quote(&quote_of(current("pay"), vec![usage("card_fees", "150")]))),
        (ErrorCode::FieldInvalid, "usage[0].quantity".to_string())
    );
    let none = engine
        .quote(&quote_of(current("pay"), vec![usage("card_fees", "0")]))
        .unwrap();
    assert_eq!(none.net_total, dec("0"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_reads_its_plans_and_usage_at_one_journal_length() {
    // Goal: the baseline (the current version) and the customers a
    // simulation rates are those of the journal length it states
    // (`as_of_seq`), not of an earlier one, even while versions are being
    // published: every version recorded before `as_of_seq` is known to it.
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(ledger(dir.path(), &["acme"]).await);
    engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let simulator = {
        let (engine, done) = (std::sync::Arc::clone(&engine), std::sync::Arc::clone(&done));
        tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let result = engine.simulate(&simulation(current("api"), &[])).unwrap();
                seen.push((result.baseline_version, result.as_of_seq));
            }
            seen
        })
    };
    for cents in 2..400 {
        let price = format!("0.{cents:03}");
        engine.publish_plan(&api_plan(&price, "USD")).await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = simulator.await.unwrap();
    let versions = engine.list_plans(Some("api")).unwrap();
    for (baseline_version, as_of_seq) in seen {
        let known = versions.iter().filter(|v| v.seq < as_of_seq).count() as u32;
        assert_eq!(
            baseline_version, known,
            "as of seq {as_of_seq} the current version is v{known}"
        );
    }
}

#[tokio::test]
async fn a_remaining_amount_is_only_a_fixed_once_coupons() {
    // Goal: only a fixed-amount once coupon carries an unused part over; a
    // remaining amount given for a fixed coupon of every period would be
    // ignored (the whole 10.00 taken where the client said 4.00 is left), so
    // it is refused with its field.
    let dir = tempfile::tempdir().unwrap();
    let engine = ledger(dir.path(), &[]).await;
    engine.publish_plan(&api_plan("0.01", "USD")).await.unwrap();
    let coupon = |duration| CouponGrant {
        code: "ten".into(),
        amount: "10".into(),
        duration: Some(duration),
        periods_used: 1,
        remaining: "4".into(),
        ..Default::default()
    };
    let mut request = quote_of(current("api"), vec![usage("calls", "1000")]);
    request.coupons = vec![coupon(CouponDuration::Once)];
    // 10.00 + 1,000 x 0.01 = 20.00, less the 4.00 left.
    assert_eq!(engine.quote(&request).unwrap().net_total, dec("16"));
    request.coupons = vec![coupon(CouponDuration::Forever)];
    assert_eq!(
        refusal(engine.quote(&request)),
        (ErrorCode::FieldInvalid, "coupons[0].remaining".to_string())
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn the_grpc_service_speaks_proto() {
    // Goal: the Rating service maps requests and results: a published plan
    // comes back as its canonical JSON with its interval and anchor; a quote's
    // decimals and days are text; a refusal carries its code and field; an
    // unknown enum number is refused with its field.
    use tally_proto::v1 as pb;
    use tally_proto::v1::rating_server::Rating;
    use tally_server::api::RatingService;
    use tonic::Request;
    use tonic_types::StatusExt;

    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(ledger(dir.path(), &[]).await);
    let service = RatingService::new(std::sync::Arc::clone(&engine));
    let published = service
        .publish_plan(Request::new(pb::PublishPlanRequest {
            plan_json: api_plan("0.010", "USD"),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            published.code.as_str(),
            published.version,
            published.created
        ),
        ("api", 1, true)
    );
    assert_eq!(
        (published.interval.as_str(), published.anchor.as_str()),
        ("monthly", "2025-01-01")
    );
    assert_eq!(published.charge_count, 2);
    let document: serde_json::Value = serde_json::from_str(&published.plan_json).unwrap();
    assert_eq!(document["charges"][1]["pricing"]["unit_price"], "0.01");
    assert_eq!(document["interval"]["anchor"], "2025-01-01");
    let listed = service
        .list_plans(Request::new(pb::ListPlansRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.plans,
        [pb::PlanVersion {
            created: false,
            ..published.clone()
        }]
    );

    let quote = |usage: Vec<pb::ChargeQuantity>, coupons: Vec<pb::CouponGrant>| pb::QuoteRequest {
        plan: Some(pb::PlanChoice {
            plan: Some(pb::plan_choice::Plan::Published(pb::PlanKey {
                code: "api".into(),
                version: 0,
            })),
        }),
        period_start: "2025-01-01".into(),
        period_end: "2025-02-01".into(),
        usage,
        coupons,
        ..Default::default()
    };
    let calls = |quantity: &str| pb::ChargeQuantity {
        charge: "calls".into(),
        quantity: quantity.into(),
        transactions: vec![],
    };
    let rating = service
        .quote(Request::new(quote(vec![calls("1234")], vec![])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            rating.plan.as_str(),
            rating.plan_version,
            rating.currency.as_str()
        ),
        ("api", 1, "USD")
    );
    assert_eq!(
        (rating.period_start.as_str(), rating.period_end.as_str()),
        ("2025-01-01", "2025-02-01")
    );
    assert_eq!(rating.net_total, "22.34");
    let line = rating.lines.iter().find(|l| l.code == "calls").unwrap();
    assert_eq!(
        (line.kind.as_str(), line.model.as_str()),
        ("charge", "per_unit")
    );
    assert_eq!(
        (line.quantity.as_str(), line.amount.as_str()),
        ("1234", "12.34")
    );

    let status = service
        .quote(Request::new(quote(
            vec![pb::ChargeQuantity {
                charge: "nope".into(),
                ..calls("1")
            }],
            vec![],
        )))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "CHARGE_NOT_FOUND");
    assert_eq!(info.metadata["field"], "usage[0].charge");

    let coupon = pb::CouponGrant {
        code: "welcome".into(),
        percent: "10".into(),
        duration: 99,
        ..Default::default()
    };
    let status = service
        .quote(Request::new(quote(vec![], vec![coupon])))
        .await
        .unwrap_err();
    let info = status.get_details_error_info().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.metadata["field"].as_str()),
        ("FIELD_INVALID", "coupons[0].duration")
    );
    engine.shutdown().await;
}
