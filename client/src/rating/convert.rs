//! Conversions between the Rating messages and the rating types.
//!
//! As in `crate::metering::convert`: answers are checked, and one that breaks
//! the contract (a decimal that is not plain, a day that is not `YYYY-MM-DD`,
//! an unknown enum value or line kind, a plan document that does not read, a
//! difference that is not simulated minus current) is an `InvalidResponse`
//! naming the field. Requests convert infallibly except for a plan document
//! that cannot be written as JSON, which is refused before anything is sent.

use std::str::FromStr;

use rust_decimal::Decimal;
use tally_proto::v1 as pb;

use super::{
    Adjustment, AppliedDiscount, AppliedTier, ChargeQuantity, CouponDiscount, CouponDuration,
    CouponGrant, CustomerSimulation, Day, FlatTiming, LineKind, LineTax, PackageDetail,
    PercentageDetail, Period, PlanChoice, PlanKey, PlanSpec, PlanVersion, Proration, QuoteRequest,
    RatedLine, RatingResult, RoundingMode, SimulateRequest, SimulationResult, TaxMode, TaxRounding,
    TaxRule, TaxTotal,
};
use crate::error::{ClientError, Result};
use crate::metering::convert::{plain_decimal, timestamp_ns};

fn invalid(field: &str, message: impl std::fmt::Display) -> ClientError {
    ClientError::invalid_response(format!("{field}: {message}"))
}

// ---------------------------------------------------------------------------
// Requests.

/// The document as the wire carries it: JSON, decimals as strings.
pub(crate) fn plan_json(spec: &PlanSpec) -> Result<String> {
    serde_json::to_string(spec).map_err(|error| {
        ClientError::InvalidRequest(format!("the plan cannot be written as JSON: {error}"))
    })
}

fn plan_key_to_proto(key: &PlanKey) -> pb::PlanKey {
    pb::PlanKey {
        code: key.code.clone(),
        version: key.version.unwrap_or(0),
    }
}

fn plan_choice_to_proto(choice: &PlanChoice) -> Result<pb::PlanChoice> {
    use pb::plan_choice::Plan;
    let plan = match choice {
        PlanChoice::Published(key) => Plan::Published(plan_key_to_proto(key)),
        PlanChoice::Draft(spec) => Plan::DraftJson(plan_json(spec)?),
    };
    Ok(pb::PlanChoice { plan: Some(plan) })
}

fn optional_day(day: Option<Day>) -> String {
    day.map(|day| day.to_string()).unwrap_or_default()
}

fn charge_quantity_to_proto(usage: &ChargeQuantity) -> pb::ChargeQuantity {
    pb::ChargeQuantity {
        charge: usage.charge.clone(),
        quantity: usage
            .quantity
            .map(|quantity| quantity.to_string())
            .unwrap_or_default(),
        transactions: usage.transactions.iter().map(Decimal::to_string).collect(),
    }
}

pub(crate) fn rounding_to_proto(mode: RoundingMode) -> pb::RoundingMode {
    match mode {
        RoundingMode::HalfUp => pb::RoundingMode::HalfUp,
        RoundingMode::HalfEven => pb::RoundingMode::HalfEven,
        RoundingMode::Up => pb::RoundingMode::Up,
        RoundingMode::Down => pb::RoundingMode::Down,
    }
}

fn tax_mode_to_proto(mode: TaxMode) -> pb::TaxMode {
    match mode {
        TaxMode::Exclusive => pb::TaxMode::Exclusive,
        TaxMode::Inclusive => pb::TaxMode::Inclusive,
    }
}

fn granularity_to_proto(granularity: TaxRounding) -> pb::TaxGranularity {
    match granularity {
        TaxRounding::PerLine => pb::TaxGranularity::PerLine,
        TaxRounding::PerInvoice => pb::TaxGranularity::PerInvoice,
    }
}

pub(crate) fn coupon_to_proto(grant: &CouponGrant) -> pb::CouponGrant {
    let coupon = &grant.coupon;
    let (percent, amount) = match coupon.discount {
        CouponDiscount::Percentage { percent } => (percent.0.to_string(), String::new()),
        CouponDiscount::Fixed { amount } => (String::new(), amount.0.to_string()),
    };
    let (duration, periods) = match coupon.duration {
        CouponDuration::Once => (pb::CouponDuration::Once, 0),
        CouponDuration::Periods { count } => (pb::CouponDuration::Periods, count),
        CouponDuration::Forever => (pb::CouponDuration::Forever, 0),
    };
    pb::CouponGrant {
        code: coupon.code.clone(),
        percent,
        amount,
        duration: duration as i32,
        periods,
        periods_used: grant.periods_used,
        remaining: grant
            .remaining
            .map(|remaining| remaining.to_string())
            .unwrap_or_default(),
    }
}

pub(crate) fn tax_to_proto(rule: &TaxRule) -> pb::TaxRule {
    pb::TaxRule {
        code: rule.code.clone(),
        country: rule.country.clone(),
        region: rule.region.clone().unwrap_or_default(),
        rate: rule.rate.0.to_string(),
        mode: tax_mode_to_proto(rule.mode) as i32,
        rounding: rounding_to_proto(rule.rounding) as i32,
        granularity: granularity_to_proto(rule.granularity) as i32,
    }
}

fn adjustment_to_proto(adjustment: &Adjustment) -> pb::Adjustment {
    pb::Adjustment {
        reason: adjustment.reason.clone(),
        amount: adjustment.amount.to_string(),
    }
}

pub(crate) fn quote_to_proto(request: &QuoteRequest) -> Result<pb::QuoteRequest> {
    Ok(pb::QuoteRequest {
        plan: Some(plan_choice_to_proto(&request.plan)?),
        period_start: optional_day(request.period_start),
        period_end: optional_day(request.period_end),
        usage: request.usage.iter().map(charge_quantity_to_proto).collect(),
        coupons: request.coupons.iter().map(coupon_to_proto).collect(),
        taxes: request.taxes.iter().map(tax_to_proto).collect(),
        adjustments: request
            .adjustments
            .iter()
            .map(adjustment_to_proto)
            .collect(),
    })
}

pub(crate) fn simulate_to_proto(request: &SimulateRequest) -> Result<pb::SimulateRequest> {
    Ok(pb::SimulateRequest {
        candidate: Some(plan_choice_to_proto(&request.candidate)?),
        baseline: request.baseline.as_ref().map(plan_key_to_proto),
        period_start: request.period.start.to_string(),
        period_end: request.period.end.to_string(),
        customers: request.customers.clone(),
        explain: request.explain,
    })
}

// ---------------------------------------------------------------------------
// Answers: plans.

pub(crate) fn check_same_code(field: &str, expected: &str, found: &str) -> Result<()> {
    if expected != found {
        return Err(invalid(
            field,
            format!("{found:?}, but plan {expected:?} was asked for"),
        ));
    }
    Ok(())
}

/// A plan version; the summary fields the server sends beside the document
/// must be the document's own.
pub(crate) fn plan_version(field: &str, answer: pb::PlanVersion) -> Result<PlanVersion> {
    let spec: PlanSpec = serde_json::from_str(&answer.plan_json)
        .map_err(|error| invalid(&format!("{field}.plan_json"), error))?;
    if answer.version == 0 {
        return Err(invalid(&format!("{field}.version"), "0 is not a version"));
    }
    let anchor = spec.interval.anchor.to_string();
    let charge_count = u32::try_from(spec.charges.len()).ok();
    let summary = [
        ("code", answer.code.as_str(), spec.code.as_str()),
        ("name", answer.name.as_str(), spec.name.as_str()),
        ("currency", answer.currency.as_str(), spec.currency.as_str()),
        (
            "interval",
            answer.interval.as_str(),
            spec.interval.unit.name(),
        ),
        ("anchor", answer.anchor.as_str(), anchor.as_str()),
    ];
    for (name, stated, document) in summary {
        if stated != document {
            return Err(invalid(
                &format!("{field}.{name}"),
                format!("{stated:?}, but the document says {document:?}"),
            ));
        }
    }
    if charge_count != Some(answer.charge_count) {
        return Err(invalid(
            &format!("{field}.charge_count"),
            format!(
                "{}, but the document has {} charges",
                answer.charge_count,
                spec.charges.len()
            ),
        ));
    }
    let published_at = answer
        .published_at
        .ok_or_else(|| invalid(&format!("{field}.published_at"), "missing"))?;
    let published_at = timestamp_ns(&published_at).ok_or_else(|| {
        invalid(
            &format!("{field}.published_at"),
            format!("{published_at:?} is not a time in nanoseconds since 1970"),
        )
    })?;
    Ok(PlanVersion {
        spec,
        version: answer.version,
        seq: answer.seq,
        published_at,
        created: answer.created,
    })
}

// ---------------------------------------------------------------------------
// Answers: ratings.

fn decimal(field: &str, text: &str) -> Result<Decimal> {
    plain_decimal(field, text)
}

/// Empty means none (a tier without end, a coupon with nothing left over).
fn optional_decimal(field: &str, text: &str) -> Result<Option<Decimal>> {
    if text.is_empty() {
        return Ok(None);
    }
    plain_decimal(field, text).map(Some)
}

fn day(field: &str, text: &str) -> Result<Day> {
    Day::from_str(text).map_err(|error| invalid(field, error))
}

fn period(field: &str, start: &str, end: &str) -> Result<Period> {
    let period = Period {
        start: day(&format!("{field}_start"), start)?,
        end: day(&format!("{field}_end"), end)?,
    };
    if period.end <= period.start {
        return Err(invalid(
            &format!("{field}_end"),
            format!("{} is not after {}", period.end, period.start),
        ));
    }
    Ok(period)
}

fn tax_mode(field: &str, value: i32) -> Result<TaxMode> {
    match pb::TaxMode::try_from(value) {
        // The contract's default: exclusive.
        Ok(pb::TaxMode::Unspecified | pb::TaxMode::Exclusive) => Ok(TaxMode::Exclusive),
        Ok(pb::TaxMode::Inclusive) => Ok(TaxMode::Inclusive),
        Err(_) => Err(invalid(field, format!("unknown tax mode {value}"))),
    }
}

fn timing(field: &str, text: &str) -> Result<Option<FlatTiming>> {
    match text {
        "" => Ok(None),
        "in_advance" => Ok(Some(FlatTiming::InAdvance)),
        "in_arrears" => Ok(Some(FlatTiming::InArrears)),
        other => Err(invalid(field, format!("unknown timing {other:?}"))),
    }
}

fn tier(field: &str, tier: pb::AppliedTier) -> Result<AppliedTier> {
    Ok(AppliedTier {
        from: decimal(&format!("{field}.from"), &tier.from)?,
        up_to: optional_decimal(&format!("{field}.up_to"), &tier.up_to)?,
        quantity: decimal(&format!("{field}.quantity"), &tier.quantity)?,
        unit_price: decimal(&format!("{field}.unit_price"), &tier.unit_price)?,
        flat_fee: decimal(&format!("{field}.flat_fee"), &tier.flat_fee)?,
        amount: decimal(&format!("{field}.amount"), &tier.amount)?,
    })
}

fn package(field: &str, package: pb::PackageDetail) -> Result<PackageDetail> {
    Ok(PackageDetail {
        size: decimal(&format!("{field}.size"), &package.size)?,
        blocks: decimal(&format!("{field}.blocks"), &package.blocks)?,
        price: decimal(&format!("{field}.price"), &package.price)?,
    })
}

fn percentage(field: &str, detail: pb::PercentageDetail) -> Result<PercentageDetail> {
    Ok(PercentageDetail {
        transactions: detail.transactions,
        volume: decimal(&format!("{field}.volume"), &detail.volume)?,
        rate: decimal(&format!("{field}.rate"), &detail.rate)?,
        fixed_fee: decimal(&format!("{field}.fixed_fee"), &detail.fixed_fee)?,
        raised_to_min: detail.raised_to_min,
        cut_to_max: detail.cut_to_max,
    })
}

fn proration(field: &str, proration: pb::Proration) -> Result<Proration> {
    Ok(Proration {
        full_amount: decimal(&format!("{field}.full_amount"), &proration.full_amount)?,
        days: proration.days,
        period_days: proration.period_days,
    })
}

fn line_tax(field: &str, tax: pb::LineTax) -> Result<LineTax> {
    Ok(LineTax {
        rate: decimal(&format!("{field}.rate"), &tax.rate)?,
        amount: decimal(&format!("{field}.amount"), &tax.amount)?,
        code: tax.code,
    })
}

/// Converts each element of a list, naming it `field[i]` in errors.
fn list<T, U>(
    field: &str,
    items: Vec<T>,
    convert: impl Fn(&str, T) -> Result<U>,
) -> Result<Vec<U>> {
    items
        .into_iter()
        .enumerate()
        .map(|(position, item)| convert(&format!("{field}[{position}]"), item))
        .collect()
}

fn line(field: &str, line: pb::RatedLine) -> Result<RatedLine> {
    let at = |name: &str| format!("{field}.{name}");
    let kind = LineKind::from_name(&line.kind)
        .ok_or_else(|| invalid(&at("kind"), format!("unknown line kind {:?}", line.kind)))?;
    Ok(RatedLine {
        kind,
        meter: (!line.meter.is_empty()).then_some(line.meter),
        group: line.group.into_iter().collect(),
        timing: timing(&at("timing"), &line.timing)?,
        quantity: decimal(&at("quantity"), &line.quantity)?,
        free_units: decimal(&at("free_units"), &line.free_units)?,
        billable_quantity: decimal(&at("billable_quantity"), &line.billable_quantity)?,
        tiers: list(&at("tiers"), line.tiers, tier)?,
        package: line
            .package
            .map(|value| package(&at("package"), value))
            .transpose()?,
        percentage: line
            .percentage
            .map(|value| percentage(&at("percentage"), value))
            .transpose()?,
        proration: line
            .proration
            .map(|value| proration(&at("proration"), value))
            .transpose()?,
        unrounded: decimal(&at("unrounded"), &line.unrounded)?,
        rounding: decimal(&at("rounding"), &line.rounding)?,
        amount: decimal(&at("amount"), &line.amount)?,
        discount: decimal(&at("discount"), &line.discount)?,
        amount_after_discount: decimal(&at("amount_after_discount"), &line.amount_after_discount)?,
        taxes: list(&at("taxes"), line.taxes, line_tax)?,
        tax: decimal(&at("tax"), &line.tax)?,
        total: decimal(&at("total"), &line.total)?,
        code: line.code,
        description: line.description,
        model: line.model,
    })
}

fn discount(field: &str, discount: pb::AppliedDiscount) -> Result<AppliedDiscount> {
    Ok(AppliedDiscount {
        amount: decimal(&format!("{field}.amount"), &discount.amount)?,
        remaining: optional_decimal(&format!("{field}.remaining"), &discount.remaining)?,
        coupon: discount.coupon,
    })
}

fn tax_total(field: &str, tax: pb::TaxTotal) -> Result<TaxTotal> {
    let at = |name: &str| format!("{field}.{name}");
    Ok(TaxTotal {
        rate: decimal(&at("rate"), &tax.rate)?,
        taxable: decimal(&at("taxable"), &tax.taxable)?,
        unrounded: decimal(&at("unrounded"), &tax.unrounded)?,
        rounding: decimal(&at("rounding"), &tax.rounding)?,
        amount: decimal(&at("amount"), &tax.amount)?,
        code: tax.code,
    })
}

pub(crate) fn rating_result(field: &str, answer: pb::RatingResult) -> Result<RatingResult> {
    let at = |name: &str| format!("{field}.{name}");
    Ok(RatingResult {
        period: period(&at("period"), &answer.period_start, &answer.period_end)?,
        billing_period: period(
            &at("billing_period"),
            &answer.billing_period_start,
            &answer.billing_period_end,
        )?,
        lines: list(&at("lines"), answer.lines, line)?,
        subtotal: decimal(&at("subtotal"), &answer.subtotal)?,
        discounts: list(&at("discounts"), answer.discounts, discount)?,
        discount_total: decimal(&at("discount_total"), &answer.discount_total)?,
        tax_mode: tax_mode(&at("tax_mode"), answer.tax_mode)?,
        taxes: list(&at("taxes"), answer.taxes, tax_total)?,
        tax_total: decimal(&at("tax_total"), &answer.tax_total)?,
        net_total: decimal(&at("net_total"), &answer.net_total)?,
        total: decimal(&at("total"), &answer.total)?,
        plan: answer.plan,
        plan_version: answer.plan_version,
        currency: answer.currency,
    })
}

/// `difference` must be `simulated - current`: a reader compares the two
/// columns and the difference, and they must tell one story.
fn check_difference(
    field: &str,
    current: Decimal,
    simulated: Decimal,
    difference: Decimal,
) -> Result<()> {
    let expected = simulated.checked_sub(current);
    if expected != Some(difference) {
        return Err(invalid(
            field,
            format!("{difference}, but {simulated} - {current} is not that"),
        ));
    }
    Ok(())
}

fn customer_simulation(field: &str, answer: pb::CustomerSimulation) -> Result<CustomerSimulation> {
    let at = |name: &str| format!("{field}.{name}");
    let current_total = decimal(&at("current_total"), &answer.current_total)?;
    let simulated_total = decimal(&at("simulated_total"), &answer.simulated_total)?;
    let difference = decimal(&at("difference"), &answer.difference)?;
    check_difference(
        &at("difference"),
        current_total,
        simulated_total,
        difference,
    )?;
    Ok(CustomerSimulation {
        current_total,
        simulated_total,
        difference,
        current: answer
            .current
            .map(|value| rating_result(&at("current"), value))
            .transpose()?,
        simulated: answer
            .simulated
            .map(|value| rating_result(&at("simulated"), value))
            .transpose()?,
        customer: answer.customer,
    })
}

pub(crate) fn simulation_result(answer: pb::SimulationResult) -> Result<SimulationResult> {
    let current_total = decimal("current_total", &answer.current_total)?;
    let simulated_total = decimal("simulated_total", &answer.simulated_total)?;
    let difference = decimal("difference", &answer.difference)?;
    check_difference("difference", current_total, simulated_total, difference)?;
    Ok(SimulationResult {
        period: period("period", &answer.period_start, &answer.period_end)?,
        customers: list("customers", answer.customers, customer_simulation)?,
        candidate_version: (answer.candidate_version != 0).then_some(answer.candidate_version),
        current_total,
        simulated_total,
        difference,
        currency: answer.currency,
        baseline_plan: answer.baseline_plan,
        baseline_version: answer.baseline_version,
        candidate_plan: answer.candidate_plan,
        as_of_seq: answer.as_of_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use tally_core::decimal::Dec;
    use tally_core::plan::Coupon;

    const PLAN: &str = r#"
code = "pro"
name = "Pro"
currency = "USD"
interval = { unit = "monthly", anchor = "2026-01-01" }

[[charges]]
code = "base"
pricing = { model = "flat", amount = "20.00" }

[[charges]]
code = "api_calls"
meter = "api_calls"
pricing = { model = "graduated", tiers = [
  { up_to = 5, unit_price = "7" },
  { unit_price = "6.50" },
] }
"#;

    fn spec() -> PlanSpec {
        toml::from_str(PLAN).unwrap()
    }

    fn wire_version(spec: &PlanSpec) -> pb::PlanVersion {
        pb::PlanVersion {
            code: "pro".into(),
            version: 2,
            plan_json: plan_json(spec).unwrap(),
            name: "Pro".into(),
            currency: "USD".into(),
            interval: "monthly".into(),
            anchor: "2026-01-01".into(),
            charge_count: 2,
            seq: 41,
            published_at: Some(prost_types::Timestamp {
                seconds: 60,
                nanos: 0,
            }),
            created: true,
        }
    }

    #[test]
    fn plan_versions_read_their_document_and_check_the_summary() {
        // Goal: the document comes back as the same plan (decimals exact, as
        // strings on the wire); a summary that disagrees with it, version 0 or a
        // missing time is a broken answer naming the field.
        let spec = spec();
        assert!(plan_json(&spec).unwrap().contains(r#""unit_price":"6.50""#));
        let version = plan_version("plan", wire_version(&spec)).unwrap();
        assert_eq!(version.spec, spec);
        assert_eq!(
            (version.code(), version.version, version.seq),
            ("pro", 2, 41)
        );
        assert_eq!(version.published_at, 60_000_000_000);
        for (change, field) in [
            (
                (|v: &mut pb::PlanVersion| v.currency = "EUR".into()) as fn(&mut pb::PlanVersion),
                "plan.currency",
            ),
            (|v| v.charge_count = 3, "plan.charge_count"),
            (|v| v.anchor = "2026-01-02".into(), "plan.anchor"),
            (|v| v.version = 0, "plan.version"),
            (|v| v.published_at = None, "plan.published_at"),
            (|v| v.plan_json = "{}".into(), "plan.plan_json"),
        ] {
            let mut wire = wire_version(&spec);
            change(&mut wire);
            let error = plan_version("plan", wire).unwrap_err();
            assert!(error.to_string().contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn quote_requests_carry_every_part() {
        // Goal: a draft travels as JSON, days as YYYY-MM-DD (empty when not
        // given), coupons and taxes with their enums and decimals as strings.
        let coupon = Coupon {
            code: "launch".into(),
            discount: CouponDiscount::Fixed {
                amount: Dec(dec!(50)),
            },
            duration: CouponDuration::Periods { count: 3 },
        };
        let rule = TaxRule {
            code: "qst".into(),
            country: "CA".into(),
            region: Some("CA-QC".into()),
            rate: Dec(dec!(9.975)),
            mode: TaxMode::Exclusive,
            rounding: RoundingMode::HalfEven,
            granularity: TaxRounding::PerInvoice,
        };
        let request = QuoteRequest::new(spec())
            .quantity("api_calls", dec!(20))
            .transactions("fees", [dec!(10.00), dec!(2.5)])
            .coupon(CouponGrant {
                coupon,
                periods_used: 1,
                remaining: Some(dec!(12.5)),
            })
            .tax(rule)
            .adjustment("credit", dec!(3.00));
        let wire = quote_to_proto(&request).unwrap();
        let Some(pb::plan_choice::Plan::DraftJson(json)) = wire.plan.unwrap().plan else {
            panic!("a draft expected");
        };
        assert_eq!(serde_json::from_str::<PlanSpec>(&json).unwrap(), spec());
        assert_eq!(
            (wire.period_start.as_str(), wire.period_end.as_str()),
            ("", "")
        );
        assert_eq!(wire.usage[0].quantity, "20");
        assert_eq!(wire.usage[1].quantity, "");
        assert_eq!(wire.usage[1].transactions, ["10.00", "2.5"]);
        let grant = &wire.coupons[0];
        assert_eq!(
            (grant.percent.as_str(), grant.amount.as_str(), grant.periods),
            ("", "50", 3)
        );
        assert_eq!(grant.duration, pb::CouponDuration::Periods as i32);
        assert_eq!((grant.periods_used, grant.remaining.as_str()), (1, "12.5"));
        let tax = &wire.taxes[0];
        assert_eq!((tax.region.as_str(), tax.rate.as_str()), ("CA-QC", "9.975"));
        assert_eq!(tax.rounding, pb::RoundingMode::HalfEven as i32);
        assert_eq!(tax.granularity, pb::TaxGranularity::PerInvoice as i32);
        assert_eq!(wire.adjustments[0].amount, "3.00");

        let day = |text: &str| Day::from_str(text).unwrap();
        let published = QuoteRequest::new(PlanKey::version("pro", 2))
            .period(day("2026-10-01"), day("2026-11-01"));
        let wire = quote_to_proto(&published).unwrap();
        assert_eq!(
            wire.plan.unwrap().plan,
            Some(pb::plan_choice::Plan::Published(pb::PlanKey {
                code: "pro".into(),
                version: 2
            }))
        );
        assert_eq!(wire.period_start, "2026-10-01");
    }

    fn wire_line() -> pb::RatedLine {
        pb::RatedLine {
            kind: "charge".into(),
            code: "api_calls".into(),
            model: "graduated".into(),
            meter: "api_calls".into(),
            quantity: "20".into(),
            free_units: "0".into(),
            billable_quantity: "20".into(),
            tiers: vec![pb::AppliedTier {
                from: "5".into(),
                up_to: String::new(),
                quantity: "15".into(),
                unit_price: "6.50".into(),
                flat_fee: "0".into(),
                amount: "97.50".into(),
            }],
            unrounded: "97.50".into(),
            rounding: "0.00".into(),
            amount: "97.50".into(),
            discount: "0.00".into(),
            amount_after_discount: "97.50".into(),
            tax: "0.00".into(),
            total: "97.50".into(),
            ..Default::default()
        }
    }

    fn wire_result() -> pb::RatingResult {
        pb::RatingResult {
            plan: "pro".into(),
            plan_version: 2,
            currency: "USD".into(),
            period_start: "2026-10-01".into(),
            period_end: "2026-11-01".into(),
            billing_period_start: "2026-10-01".into(),
            billing_period_end: "2026-11-01".into(),
            lines: vec![wire_line()],
            subtotal: "97.50".into(),
            discounts: vec![pb::AppliedDiscount {
                coupon: "launch".into(),
                amount: "0".into(),
                remaining: String::new(),
            }],
            discount_total: "0".into(),
            tax_mode: 0,
            taxes: vec![],
            tax_total: "0".into(),
            net_total: "97.50".into(),
            total: "97.50".into(),
        }
    }

    #[test]
    fn ratings_parse_exactly_and_name_broken_fields() {
        // Goal: amounts keep their scale, empty up_to / remaining are none, an
        // unspecified tax mode is exclusive; a bad decimal, day or line kind
        // is refused with its path.
        let result = rating_result("result", wire_result()).unwrap();
        let line = &result.lines[0];
        assert_eq!(line.kind, LineKind::Charge);
        assert_eq!(line.meter.as_deref(), Some("api_calls"));
        assert_eq!(line.tiers[0].up_to, None);
        assert_eq!(line.tiers[0].amount.to_string(), "97.50");
        assert_eq!(line.timing, None);
        assert_eq!(result.discounts[0].remaining, None);
        assert_eq!(result.tax_mode, TaxMode::Exclusive);
        assert_eq!(result.period.days(), 31);

        let mut bad = wire_result();
        bad.lines[0].tiers[0].amount = "97,50".into();
        let error = rating_result("result", bad).unwrap_err().to_string();
        assert!(error.contains("result.lines[0].tiers[0].amount"), "{error}");
        let mut bad = wire_result();
        bad.lines[0].kind = "tip".into();
        let error = rating_result("result", bad).unwrap_err().to_string();
        assert!(error.contains("result.lines[0].kind"), "{error}");
        let mut bad = wire_result();
        bad.period_end = "2026-10-01".into();
        let error = rating_result("result", bad).unwrap_err().to_string();
        assert!(error.contains("result.period_end"), "{error}");
        let mut bad = wire_result();
        bad.billing_period_start = "2026-13-01".into();
        let error = rating_result("result", bad).unwrap_err().to_string();
        assert!(error.contains("result.billing_period_start"), "{error}");
    }

    #[test]
    fn simulations_must_subtract_right() {
        // Goal: a difference that is not simulated minus current is a broken
        // answer; a draft candidate has no version.
        let customer = |current: &str, simulated: &str, difference: &str| pb::CustomerSimulation {
            customer: "acme".into(),
            current_total: current.into(),
            simulated_total: simulated.into(),
            difference: difference.into(),
            current: None,
            simulated: Some(wire_result()),
        };
        let answer = pb::SimulationResult {
            currency: "USD".into(),
            baseline_plan: "pro".into(),
            baseline_version: 1,
            candidate_plan: "pro".into(),
            candidate_version: 0,
            period_start: "2026-10-01".into(),
            period_end: "2026-11-01".into(),
            customers: vec![customer("100.00", "97.50", "-2.50")],
            current_total: "100.00".into(),
            simulated_total: "97.50".into(),
            difference: "-2.50".into(),
            as_of_seq: 9,
        };
        let result = simulation_result(answer.clone()).unwrap();
        assert_eq!(result.candidate_version, None);
        assert_eq!(result.customers[0].difference, dec!(-2.50));
        assert!(result.customers[0].simulated.is_some());
        let mut wrong = answer.clone();
        wrong.customers[0] = customer("100.00", "97.50", "2.50");
        let error = simulation_result(wrong).unwrap_err().to_string();
        assert!(error.contains("customers[0].difference"), "{error}");
        let mut wrong = answer;
        wrong.difference = "0".into();
        assert!(simulation_result(wrong).is_err());
    }
}
