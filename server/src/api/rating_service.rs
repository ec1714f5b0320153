//! The `tally.v1.Rating` gRPC service: plan versions, quotes, simulations.
//!
//! Conversion only: proto messages become the engine's plain requests (enums
//! mapped, an unknown enum number refused with its field), and results become
//! proto messages (decimals as their text, days as `YYYY-MM-DD`). Every other
//! check is the engine's (`rating::operations`), with its field path.

use std::sync::Arc;

use tally_core::calendar::Period;
use tally_core::error_code::ErrorCode;
use tally_core::plan::{CouponDuration, FlatTiming, RoundingMode, TaxMode, TaxRounding};
use tally_proto::v1 as pb;
use tally_proto::v1::rating_server::Rating;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use crate::engine::Engine;
use crate::error::LedgerError;
use crate::rating::catalog::PlanVersion;
use crate::rating::operations::{
    AdjustmentInput, ChargeQuantity, CouponGrant, PlanChoice, PlanKey, QuoteRequest,
    SimulateRequest, Simulation, TaxInput,
};

pub struct RatingService {
    engine: Arc<Engine>,
}

impl RatingService {
    pub fn new(engine: Arc<Engine>) -> Self {
        RatingService { engine }
    }
}

fn unknown(field: String, what: &str, number: i32) -> LedgerError {
    LedgerError::new(
        ErrorCode::FieldInvalid,
        field,
        format!("unknown {what} {number}"),
    )
}

fn plan_version(version: PlanVersion, created: bool) -> Result<pb::PlanVersion, Status> {
    let plan_json = serde_json::to_string(&version.spec)
        .map_err(|e| super::status::internal("plan document", e))?;
    let spec = version.spec;
    Ok(pb::PlanVersion {
        code: spec.code,
        version: version.version,
        plan_json,
        name: spec.name,
        currency: spec.currency,
        interval: spec.interval.unit.name().to_string(),
        anchor: spec.interval.anchor.to_string(),
        charge_count: spec.charges.len() as u32,
        seq: version.seq,
        published_at: Some(timestamp(version.published_at)),
        created,
    })
}

fn plan_key(key: pb::PlanKey) -> PlanKey {
    PlanKey {
        code: key.code,
        version: key.version,
    }
}

fn plan_choice(choice: Option<pb::PlanChoice>) -> Option<PlanChoice> {
    match choice?.plan? {
        pb::plan_choice::Plan::Published(key) => Some(PlanChoice::Published(plan_key(key))),
        pb::plan_choice::Plan::DraftJson(json) => Some(PlanChoice::Draft(json)),
    }
}

fn coupon_duration(
    number: i32,
    periods: u32,
    field: String,
) -> Result<Option<CouponDuration>, LedgerError> {
    use pb::CouponDuration as P;
    match P::try_from(number) {
        Ok(P::Unspecified) => Ok(None),
        Ok(P::Once) => Ok(Some(CouponDuration::Once)),
        Ok(P::Periods) => Ok(Some(CouponDuration::Periods { count: periods })),
        Ok(P::Forever) => Ok(Some(CouponDuration::Forever)),
        Err(_) => Err(unknown(field, "coupon duration", number)),
    }
}

fn tax_mode_from_proto(number: i32, field: String) -> Result<TaxMode, LedgerError> {
    match pb::TaxMode::try_from(number) {
        Ok(pb::TaxMode::Unspecified | pb::TaxMode::Exclusive) => Ok(TaxMode::Exclusive),
        Ok(pb::TaxMode::Inclusive) => Ok(TaxMode::Inclusive),
        Err(_) => Err(unknown(field, "tax mode", number)),
    }
}

fn tax_mode_to_proto(mode: TaxMode) -> pb::TaxMode {
    match mode {
        TaxMode::Exclusive => pb::TaxMode::Exclusive,
        TaxMode::Inclusive => pb::TaxMode::Inclusive,
    }
}

fn rounding_from_proto(number: i32, field: String) -> Result<RoundingMode, LedgerError> {
    use pb::RoundingMode as P;
    match P::try_from(number) {
        Ok(P::Unspecified | P::HalfUp) => Ok(RoundingMode::HalfUp),
        Ok(P::HalfEven) => Ok(RoundingMode::HalfEven),
        Ok(P::Up) => Ok(RoundingMode::Up),
        Ok(P::Down) => Ok(RoundingMode::Down),
        Err(_) => Err(unknown(field, "rounding mode", number)),
    }
}

fn granularity_from_proto(number: i32, field: String) -> Result<TaxRounding, LedgerError> {
    use pb::TaxGranularity as P;
    match P::try_from(number) {
        Ok(P::Unspecified | P::PerLine) => Ok(TaxRounding::PerLine),
        Ok(P::PerInvoice) => Ok(TaxRounding::PerInvoice),
        Err(_) => Err(unknown(field, "tax granularity", number)),
    }
}

fn quote_request(request: pb::QuoteRequest) -> Result<QuoteRequest, LedgerError> {
    let coupons = request
        .coupons
        .into_iter()
        .enumerate()
        .map(|(index, coupon)| {
            Ok(CouponGrant {
                duration: coupon_duration(
                    coupon.duration,
                    coupon.periods,
                    format!("coupons[{index}].duration"),
                )?,
                code: coupon.code,
                percent: coupon.percent,
                amount: coupon.amount,
                periods_used: coupon.periods_used,
                remaining: coupon.remaining,
            })
        })
        .collect::<Result<_, LedgerError>>()?;
    let taxes = request
        .taxes
        .into_iter()
        .enumerate()
        .map(|(index, tax)| {
            Ok(TaxInput {
                mode: tax_mode_from_proto(tax.mode, format!("taxes[{index}].mode"))?,
                rounding: rounding_from_proto(tax.rounding, format!("taxes[{index}].rounding"))?,
                granularity: granularity_from_proto(
                    tax.granularity,
                    format!("taxes[{index}].granularity"),
                )?,
                code: tax.code,
                country: tax.country,
                region: tax.region,
                rate: tax.rate,
            })
        })
        .collect::<Result<_, LedgerError>>()?;
    Ok(QuoteRequest {
        plan: plan_choice(request.plan),
        period_start: request.period_start,
        period_end: request.period_end,
        usage: request
            .usage
            .into_iter()
            .map(|usage| ChargeQuantity {
                charge: usage.charge,
                quantity: usage.quantity,
                transactions: usage.transactions,
            })
            .collect(),
        coupons,
        taxes,
        adjustments: request
            .adjustments
            .into_iter()
            .map(|adjustment| AdjustmentInput {
                reason: adjustment.reason,
                amount: adjustment.amount,
            })
            .collect(),
    })
}

fn text(value: rust_decimal::Decimal) -> String {
    value.to_string()
}

fn period_texts(period: Period) -> (String, String) {
    (period.start.to_string(), period.end.to_string())
}

fn rated_line(line: crate::rating::RatedLine) -> pb::RatedLine {
    pb::RatedLine {
        kind: line.kind.name().to_string(),
        code: line.code,
        description: line.description,
        model: line.model,
        meter: line.meter.unwrap_or_default(),
        group: line.group.into_iter().collect(),
        timing: match line.timing {
            None => String::new(),
            Some(FlatTiming::InAdvance) => "in_advance".to_string(),
            Some(FlatTiming::InArrears) => "in_arrears".to_string(),
        },
        quantity: text(line.quantity),
        free_units: text(line.free_units),
        billable_quantity: text(line.billable_quantity),
        tiers: line
            .tiers
            .into_iter()
            .map(|tier| pb::AppliedTier {
                from: text(tier.from),
                up_to: tier.up_to.map(text).unwrap_or_default(),
                quantity: text(tier.quantity),
                unit_price: text(tier.unit_price),
                flat_fee: text(tier.flat_fee),
                amount: text(tier.amount),
            })
            .collect(),
        package: line.package.map(|package| pb::PackageDetail {
            size: text(package.size),
            blocks: text(package.blocks),
            price: text(package.price),
        }),
        percentage: line.percentage.map(|percentage| pb::PercentageDetail {
            transactions: percentage.transactions,
            volume: text(percentage.volume),
            rate: text(percentage.rate),
            fixed_fee: text(percentage.fixed_fee),
            raised_to_min: percentage.raised_to_min,
            cut_to_max: percentage.cut_to_max,
        }),
        proration: line.proration.map(|proration| pb::Proration {
            full_amount: text(proration.full_amount),
            days: proration.days,
            period_days: proration.period_days,
        }),
        unrounded: text(line.unrounded),
        rounding: text(line.rounding),
        amount: text(line.amount),
        discount: text(line.discount),
        amount_after_discount: text(line.amount_after_discount),
        taxes: line
            .taxes
            .into_iter()
            .map(|tax| pb::LineTax {
                code: tax.code,
                rate: text(tax.rate),
                amount: text(tax.amount),
            })
            .collect(),
        tax: text(line.tax),
        total: text(line.total),
    }
}

fn rating_result(rating: crate::rating::Rating) -> pb::RatingResult {
    let (period_start, period_end) = period_texts(rating.period);
    let (billing_period_start, billing_period_end) = period_texts(rating.billing_period);
    pb::RatingResult {
        plan: rating.plan,
        plan_version: rating.plan_version,
        currency: rating.currency,
        period_start,
        period_end,
        billing_period_start,
        billing_period_end,
        lines: rating.lines.into_iter().map(rated_line).collect(),
        subtotal: text(rating.subtotal),
        discounts: rating
            .discounts
            .into_iter()
            .map(|discount| pb::AppliedDiscount {
                coupon: discount.coupon,
                amount: text(discount.amount),
                remaining: discount.remaining.map(text).unwrap_or_default(),
            })
            .collect(),
        discount_total: text(rating.discount_total),
        tax_mode: tax_mode_to_proto(rating.tax_mode) as i32,
        taxes: rating
            .taxes
            .into_iter()
            .map(|tax| pb::TaxTotal {
                code: tax.code,
                rate: text(tax.rate),
                taxable: text(tax.taxable),
                unrounded: text(tax.unrounded),
                rounding: text(tax.rounding),
                amount: text(tax.amount),
            })
            .collect(),
        tax_total: text(rating.tax_total),
        net_total: text(rating.net_total),
        total: text(rating.total),
    }
}

fn simulation_result(simulation: Simulation) -> pb::SimulationResult {
    let (period_start, period_end) = period_texts(simulation.period);
    pb::SimulationResult {
        currency: simulation.currency,
        baseline_plan: simulation.baseline_plan,
        baseline_version: simulation.baseline_version,
        candidate_plan: simulation.candidate_plan,
        candidate_version: simulation.candidate_version,
        period_start,
        period_end,
        customers: simulation
            .customers
            .into_iter()
            .map(|customer| pb::CustomerSimulation {
                customer: customer.customer,
                current_total: text(customer.current_total),
                simulated_total: text(customer.simulated_total),
                difference: text(customer.difference),
                current: customer.current.map(rating_result),
                simulated: customer.simulated.map(rating_result),
            })
            .collect(),
        current_total: text(simulation.current_total),
        simulated_total: text(simulation.simulated_total),
        difference: text(simulation.difference),
        as_of_seq: simulation.as_of_seq,
    }
}

#[tonic::async_trait]
impl Rating for RatingService {
    async fn publish_plan(
        &self,
        request: Request<pb::PublishPlanRequest>,
    ) -> Result<Response<pb::PlanVersion>, Status> {
        let published = self
            .engine
            .publish_plan(&request.into_inner().plan_json)
            .await?;
        Ok(Response::new(plan_version(
            published.plan,
            published.created,
        )?))
    }

    async fn list_plans(
        &self,
        request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        let code = request.into_inner().code;
        let plans = self
            .engine
            .list_plans((!code.is_empty()).then_some(code.as_str()))?
            .into_iter()
            .map(|version| plan_version(version, false))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListPlansResponse { plans }))
    }

    async fn get_plan(
        &self,
        request: Request<pb::GetPlanRequest>,
    ) -> Result<Response<pb::PlanVersion>, Status> {
        let request = request.into_inner();
        let version = self.engine.get_plan(&request.code, request.version)?;
        Ok(Response::new(plan_version(version, false)?))
    }

    async fn quote(
        &self,
        request: Request<pb::QuoteRequest>,
    ) -> Result<Response<pb::RatingResult>, Status> {
        let request = quote_request(request.into_inner())?;
        let engine = Arc::clone(&self.engine);
        // Rating many transactions is CPU work: off the runtime's threads.
        let rating = tokio::task::spawn_blocking(move || engine.quote(&request))
            .await
            .map_err(|e| super::status::internal("quote", e))??;
        Ok(Response::new(rating_result(rating)))
    }

    async fn simulate(
        &self,
        request: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulationResult>, Status> {
        let request = request.into_inner();
        let request = SimulateRequest {
            candidate: plan_choice(request.candidate),
            baseline: request.baseline.map(plan_key),
            period_start: request.period_start,
            period_end: request.period_end,
            customers: request.customers,
            explain: request.explain,
        };
        let engine = Arc::clone(&self.engine);
        // Reads stored usage and possibly the journal, then rates every
        // customer twice: off the runtime's threads.
        let simulation = tokio::task::spawn_blocking(move || engine.simulate(&request))
            .await
            .map_err(|e| super::status::internal("simulation", e))??;
        Ok(Response::new(simulation_result(simulation)))
    }
}
