//! The engine's rating calls: plan versions are published through the
//! writer; plans, quotes and simulations are read from the published read
//! model and record nothing.
//!
//! Requests come in as plain data with decimals and days as the client wrote
//! them (like `metering::stored::QueryFields`): every check, with the path of
//! the field at fault, is made here, so that the gRPC edge only maps proto
//! types and in-process callers get exactly the same answers.

use super::catalog::{check_references, parse_plan, PlanVersion};
use super::{rate, Adjustment, AppliedCoupon, ChargeUsage, Rating, RatingInput};
use crate::engine::Engine;
use crate::error::{Error, LedgerError, Result, StoreError};
use crate::ledger::limits::{
    QUOTE_ADJUSTMENTS_MAX, QUOTE_COUPONS_MAX, QUOTE_TAXES_MAX, QUOTE_TRANSACTIONS_MAX,
    SIMULATION_CUSTOMERS_MAX,
};
use crate::store::read_model::ReadModel;
use crate::writer::{now_ns, Request};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use tally_core::calendar::{Day, Period, DAY_NS};
use tally_core::decimal::Dec;
use tally_core::error_code::ErrorCode;
use tally_core::meter::quoted;
use tally_core::money::parse_decimal;
use tally_core::plan::{
    validate_tax_rules, Coupon, CouponDiscount, CouponDuration, PlanSpec, Pricing, RoundingMode,
    TaxMode, TaxRounding, TaxRule,
};

/// A published plan version: its code and version (0: the current one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanKey {
    pub code: String,
    pub version: u32,
}

/// The plan a quote or a simulation rates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanChoice {
    Published(PlanKey),
    /// A plan document (JSON), checked as publishing checks it, not recorded.
    Draft(String),
}

/// A plan version and whether this call recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPublishedView {
    pub plan: PlanVersion,
    pub created: bool,
}

/// One charge's usage in a quote, as the client wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeQuantity {
    pub charge: String,
    /// Empty for a percentage charge given its transactions (then their sum).
    pub quantity: String,
    pub transactions: Vec<String>,
}

/// A coupon granted to the customer, as the client wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CouponGrant {
    pub code: String,
    /// Exactly one of `percent` and `amount` is set.
    pub percent: String,
    pub amount: String,
    /// `None`: not given (refused).
    pub duration: Option<CouponDuration>,
    pub periods_used: u32,
    /// A fixed-amount once coupon's unused part; empty: all of it if unused.
    pub remaining: String,
}

/// A tax rule, as the client wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaxInput {
    pub code: String,
    pub country: String,
    /// Empty: the whole country.
    pub region: String,
    pub rate: String,
    pub mode: TaxMode,
    pub rounding: RoundingMode,
    pub granularity: TaxRounding,
}

/// A manual line, as the client wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdjustmentInput {
    pub reason: String,
    pub amount: String,
}

/// What a quote rates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuoteRequest {
    /// `None`: not given (refused).
    pub plan: Option<PlanChoice>,
    /// `YYYY-MM-DD`, `[start, end)`; both empty: the billing period containing
    /// today (the server's clock, UTC).
    pub period_start: String,
    pub period_end: String,
    pub usage: Vec<ChargeQuantity>,
    pub coupons: Vec<CouponGrant>,
    pub taxes: Vec<TaxInput>,
    pub adjustments: Vec<AdjustmentInput>,
}

/// What a simulation compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulateRequest {
    pub candidate: Option<PlanChoice>,
    /// `None`: the current version of the candidate's code.
    pub baseline: Option<PlanKey>,
    /// Required, `YYYY-MM-DD`, `[start, end)`.
    pub period_start: String,
    pub period_end: String,
    /// Empty: every customer.
    pub customers: Vec<String>,
    /// Keep each customer's two ratings.
    pub explain: bool,
}

/// One customer under the baseline and the candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSimulation {
    pub customer: String,
    /// Net totals: after discount, before tax.
    pub current_total: Decimal,
    pub simulated_total: Decimal,
    /// `simulated_total - current_total`.
    pub difference: Decimal,
    /// With `explain`.
    pub current: Option<Rating>,
    pub simulated: Option<Rating>,
}

/// A simulation's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    pub currency: String,
    pub baseline_plan: String,
    pub baseline_version: u32,
    pub candidate_plan: String,
    /// 0 for a draft.
    pub candidate_version: u32,
    pub period: Period,
    /// In customer id order.
    pub customers: Vec<CustomerSimulation>,
    pub current_total: Decimal,
    pub simulated_total: Decimal,
    pub difference: Decimal,
    /// The journal length the usage was read at.
    pub as_of_seq: u64,
}

/// A plan to rate with: its document and version (0: a draft).
struct ChosenPlan {
    spec: PlanSpec,
    version: u32,
}

fn plan_not_found(field: impl Into<String>, message: String) -> Error {
    Error::Ledger(LedgerError::new(ErrorCode::PlanNotFound, field, message))
}

fn required(field: impl Into<String>, what: &str) -> LedgerError {
    LedgerError::new(
        ErrorCode::FieldRequired,
        field,
        format!("{what} is required"),
    )
}

fn too_many(field: &str, len: usize, max: usize) -> LedgerError {
    LedgerError::new(
        ErrorCode::BatchTooLarge,
        field,
        format!("{len} items; the limit is {max}"),
    )
}

/// A decimal as a client writes it: strictly (no exponent, no '+', no
/// spaces, never rounded).
fn decimal(text: &str, field: &str) -> std::result::Result<Decimal, LedgerError> {
    parse_decimal(text)
        .map(|value| value.normalize())
        .map_err(|error| LedgerError::new(ErrorCode::FieldInvalid, field, error.to_string()))
}

fn day(text: &str, field: &str) -> std::result::Result<Day, LedgerError> {
    text.parse::<Day>()
        .map_err(|error| LedgerError::new(ErrorCode::FieldInvalid, field, error.to_string()))
}

/// A period of days given by the client, `start < end`.
fn given_period(start: &str, end: &str) -> std::result::Result<Period, LedgerError> {
    for (field, text) in [("period_start", start), ("period_end", end)] {
        if text.is_empty() {
            return Err(LedgerError::new(
                ErrorCode::PeriodInvalid,
                field,
                "a period needs both its first day and its end day (YYYY-MM-DD)",
            ));
        }
    }
    let period = Period {
        start: day(start, "period_start")?,
        end: day(end, "period_end")?,
    };
    if period.start >= period.end {
        return Err(LedgerError::new(
            ErrorCode::PeriodInvalid,
            "period_end",
            format!(
                "the period's end {} is not after its start {}",
                period.end, period.start
            ),
        ));
    }
    Ok(period)
}

/// Today, UTC, by the server's clock.
fn today() -> Day {
    let days = now_ns().div_euclid(DAY_NS);
    Day(i32::try_from(days).unwrap_or(i32::MAX))
}

/// The published version `key` names (0: current); `field` is the request's
/// field holding the key.
fn published(
    model: &ReadModel,
    key: &PlanKey,
    field: &str,
) -> std::result::Result<PlanVersion, Error> {
    if key.code.is_empty() {
        return Err(required(format!("{field}.code"), "the plan's code").into());
    }
    let versions = model.plans.versions(&key.code);
    if versions.is_empty() {
        return Err(plan_not_found(
            format!("{field}.code"),
            format!("no plan {}", quoted(&key.code)),
        ));
    }
    model
        .plans
        .version(&key.code, key.version)
        .cloned()
        .ok_or_else(|| {
            plan_not_found(
                format!("{field}.version"),
                format!(
                    "plan {} has versions 1 to {}, not {}",
                    quoted(&key.code),
                    versions.len(),
                    key.version
                ),
            )
        })
}

/// The plan a quote or simulation names, with its currency's scale. A draft
/// is checked exactly as publishing checks it (its errors name their place in
/// the document, as when it is published).
fn choose(
    model: &ReadModel,
    choice: Option<&PlanChoice>,
    field: &str,
) -> std::result::Result<(ChosenPlan, u8), Error> {
    let plan = match choice {
        None => return Err(required(field, "a plan (published or draft)").into()),
        Some(PlanChoice::Published(key)) => {
            let version = published(model, key, &format!("{field}.published"))?;
            ChosenPlan {
                spec: version.spec,
                version: version.version,
            }
        }
        Some(PlanChoice::Draft(json)) => {
            let spec = parse_plan(json, &format!("{field}.draft_json"))?;
            check_references(
                &spec,
                |code| model.currency_scale(code).is_some(),
                &model.usage.catalog,
            )?;
            ChosenPlan { spec, version: 0 }
        }
    };
    let scale = model.currency_scale(&plan.spec.currency).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::CurrencyUnknown,
            "currency",
            format!("no currency {}", quoted(&plan.spec.currency)),
        )
    })?;
    Ok((plan, scale))
}

/// A quote's usage by charge code: each named charge exists and is metered,
/// once; decimals are strict and not negative; a percentage charge may give
/// its transactions (the quantity is then their sum).
fn quote_usage(
    plan: &PlanSpec,
    given: &[ChargeQuantity],
) -> std::result::Result<BTreeMap<String, ChargeUsage>, LedgerError> {
    if given.len() > plan.charges.len() {
        return Err(too_many("usage", given.len(), plan.charges.len()));
    }
    let transactions: usize = given.iter().map(|q| q.transactions.len()).sum();
    if transactions > QUOTE_TRANSACTIONS_MAX {
        return Err(too_many("usage", transactions, QUOTE_TRANSACTIONS_MAX));
    }
    let not_negative = |value: Decimal, field: &str| {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(LedgerError::new(
                ErrorCode::QuantityNegative,
                field,
                format!("{value} is negative"),
            ));
        }
        Ok(value)
    };
    let mut usage = BTreeMap::new();
    for (index, given) in given.iter().enumerate() {
        let at = format!("usage[{index}]");
        if given.charge.is_empty() {
            return Err(required(format!("{at}.charge"), "the charge's code"));
        }
        let Some(charge) = plan.charges.iter().find(|c| c.code == given.charge) else {
            return Err(LedgerError::new(
                ErrorCode::ChargeNotFound,
                format!("{at}.charge"),
                format!(
                    "plan {} has no charge {}",
                    quoted(&plan.code),
                    quoted(&given.charge)
                ),
            ));
        };
        if charge.meter.is_none() {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("{at}.charge"),
                format!(
                    "charge {} is a flat fee: it takes no quantity",
                    quoted(&charge.code)
                ),
            ));
        }
        let percentage = matches!(charge.pricing, Pricing::Percentage { .. });
        if !given.transactions.is_empty() && !percentage {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("{at}.transactions"),
                format!(
                    "charge {} is {}: only a percentage charge reads transactions",
                    quoted(&charge.code),
                    charge.pricing.model()
                ),
            ));
        }
        let mut amounts = Vec::with_capacity(given.transactions.len());
        let mut sum = Decimal::ZERO;
        for (number, text) in given.transactions.iter().enumerate() {
            let field = format!("{at}.transactions[{number}]");
            let amount = not_negative(decimal(text, &field)?, &field)?;
            sum = sum.checked_add(amount).ok_or_else(|| {
                LedgerError::new(
                    ErrorCode::AmountOverflow,
                    &field,
                    "the transactions' sum overflows",
                )
            })?;
            amounts.push(amount);
        }
        let field = format!("{at}.quantity");
        let quantity = if given.quantity.is_empty() {
            if amounts.is_empty() {
                return Err(required(field, "the quantity"));
            }
            sum
        } else {
            let quantity = not_negative(decimal(&given.quantity, &field)?, &field)?;
            // A percentage charge is priced per transaction: a quantity that
            // is not their sum (e.g. a volume given without them) would be
            // rated as transactions the client did not give.
            if percentage && quantity != sum {
                return Err(LedgerError::new(
                    ErrorCode::FieldInvalid,
                    field,
                    format!(
                        "{quantity} is not the transactions' sum {sum}: a percentage charge is rated on each transaction's amount"
                    ),
                ));
            }
            quantity
        };
        let usage_of = ChargeUsage {
            quantity,
            transactions: amounts,
        };
        if usage.insert(charge.code.clone(), usage_of).is_some() {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("{at}.charge"),
                format!("charge {} is given twice", quoted(&charge.code)),
            ));
        }
    }
    Ok(usage)
}

/// A coupon's error at the request's field names: the document's
/// `discount.percent`, `discount.amount` and `duration.count` are the
/// request's `percent`, `amount` and `periods`.
fn coupon_error(error: tally_core::plan::PlanError) -> LedgerError {
    let mut error = super::plan_error(error);
    let field = std::mem::take(&mut error.field);
    coupon_error_field(error, field)
}

/// A refusal of `rate` named by the quote request's fields: `rate` names
/// its own input (`period`, `charges[2]`, `lines`), which the client did not
/// write. A charge's error lands on the usage given for it; an overflow of
/// the lines' sums on the usage as a whole.
fn in_quote(mut error: LedgerError, plan: &PlanSpec, request: &QuoteRequest) -> LedgerError {
    let field = std::mem::take(&mut error.field);
    error.field = if field == "period" {
        "period_end".to_string()
    } else if let Some((index, tail)) = field
        .strip_prefix("charges[")
        .and_then(|rest| rest.split_once(']'))
    {
        let code = index
            .parse::<usize>()
            .ok()
            .and_then(|index| plan.charges.get(index))
            .map(|charge| charge.code.as_str());
        match request
            .usage
            .iter()
            .position(|given| Some(given.charge.as_str()) == code)
        {
            Some(given) if tail.is_empty() => format!("usage[{given}].quantity"),
            Some(given) => format!("usage[{given}]{tail}"),
            None => "plan".to_string(),
        }
    } else if matches!(field.as_str(), "lines" | "minimum_commitment") {
        "usage".to_string()
    } else if field.starts_with("coupons[") {
        return coupon_error_field(error, field);
    } else if field.starts_with("taxes") || field.starts_with("adjustments[") {
        field
    } else {
        // The plan's own checks, already passed when it was chosen.
        "plan".to_string()
    };
    error
}

fn coupon_error_field(mut error: LedgerError, field: String) -> LedgerError {
    error.field = field;
    for (document, request) in [
        (".discount.percent", ".percent"),
        (".discount.amount", ".amount"),
        (".duration.count", ".periods"),
    ] {
        if let Some(head) = error.field.strip_suffix(document) {
            error.field = format!("{head}{request}");
        }
    }
    error
}

/// A refusal of `rate` in a simulation: the period by its end, anything else
/// (an overflow of one customer's figures) by the plan that was rated, with
/// the customer named in the message.
fn in_simulation(mut error: LedgerError, side: &str, customer: &str) -> LedgerError {
    if error.field == "period" {
        error.field = "period_end".to_string();
    } else {
        error.message = format!("customer {}: {}", quoted(customer), error.message);
        error.field = side.to_string();
    }
    error
}

fn coupons(grants: &[CouponGrant]) -> std::result::Result<Vec<AppliedCoupon>, LedgerError> {
    if grants.len() > QUOTE_COUPONS_MAX {
        return Err(too_many("coupons", grants.len(), QUOTE_COUPONS_MAX));
    }
    let mut codes = BTreeSet::new();
    let mut applied = Vec::with_capacity(grants.len());
    for (index, grant) in grants.iter().enumerate() {
        let at = format!("coupons[{index}]");
        let discount = match (grant.percent.is_empty(), grant.amount.is_empty()) {
            (true, true) => {
                return Err(required(
                    format!("{at}.percent"),
                    "one of percent and amount",
                ))
            }
            (false, false) => {
                return Err(LedgerError::new(
                    ErrorCode::FieldInvalid,
                    format!("{at}.amount"),
                    "a coupon has a percent or an amount, not both",
                ))
            }
            (false, true) => CouponDiscount::Percentage {
                percent: Dec(decimal(&grant.percent, &format!("{at}.percent"))?),
            },
            (true, false) => CouponDiscount::Fixed {
                amount: Dec(decimal(&grant.amount, &format!("{at}.amount"))?),
            },
        };
        let duration = grant
            .duration
            .ok_or_else(|| required(format!("{at}.duration"), "the coupon's duration"))?;
        let coupon = Coupon {
            code: grant.code.clone(),
            discount,
            duration,
        };
        coupon.validate(&at).map_err(coupon_error)?;
        if !codes.insert(coupon.code.clone()) {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("{at}.code"),
                format!("coupon {} is given twice", quoted(&coupon.code)),
            ));
        }
        let remaining = if grant.remaining.is_empty() {
            None
        } else {
            let field = format!("{at}.remaining");
            // Only a fixed `once` coupon carries its unused part over; any
            // other coupon's remaining amount would be silently ignored.
            let (CouponDiscount::Fixed { amount }, CouponDuration::Once) =
                (coupon.discount.clone(), coupon.duration)
            else {
                return Err(LedgerError::new(
                    ErrorCode::FieldInvalid,
                    field,
                    "only a fixed-amount once coupon has a remaining amount",
                ));
            };
            let remaining = decimal(&grant.remaining, &field)?;
            if (remaining.is_sign_negative() && !remaining.is_zero()) || remaining > amount.0 {
                return Err(LedgerError::new(
                    ErrorCode::FieldInvalid,
                    field,
                    format!(
                        "{remaining} is not between 0 and the coupon's amount {}",
                        amount.0
                    ),
                ));
            }
            Some(remaining)
        };
        applied.push(AppliedCoupon {
            coupon,
            periods_used: grant.periods_used,
            remaining,
        });
    }
    Ok(applied)
}

fn taxes(inputs: &[TaxInput]) -> std::result::Result<Vec<TaxRule>, LedgerError> {
    if inputs.len() > QUOTE_TAXES_MAX {
        return Err(too_many("taxes", inputs.len(), QUOTE_TAXES_MAX));
    }
    let mut rules = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let field = format!("taxes[{index}].rate");
        if input.rate.is_empty() {
            return Err(required(field, "the tax rate"));
        }
        rules.push(TaxRule {
            code: input.code.clone(),
            country: input.country.clone(),
            region: (!input.region.is_empty()).then(|| input.region.clone()),
            rate: Dec(decimal(&input.rate, &field)?),
            mode: input.mode,
            rounding: input.rounding,
            granularity: input.granularity,
        });
    }
    let refs: Vec<&TaxRule> = rules.iter().collect();
    validate_tax_rules(&refs, "taxes").map_err(super::plan_error)?;
    Ok(rules)
}

fn adjustments(inputs: &[AdjustmentInput]) -> std::result::Result<Vec<Adjustment>, LedgerError> {
    if inputs.len() > QUOTE_ADJUSTMENTS_MAX {
        return Err(too_many("adjustments", inputs.len(), QUOTE_ADJUSTMENTS_MAX));
    }
    let mut adjustments = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        // The reason and the amount are judged by `rate` itself, the one
        // place that says what an adjustment may be.
        let field = format!("adjustments[{index}].amount");
        if input.amount.is_empty() {
            return Err(required(field, "the amount"));
        }
        let amount = decimal(&input.amount, &field)?;
        adjustments.push(Adjustment {
            reason: input.reason.clone(),
            amount,
        });
    }
    Ok(adjustments)
}

impl Engine {
    /// Publishes a plan document (JSON): version 1 of a new code, then one
    /// more per change; the current version's document again records nothing
    /// (`created` false).
    pub async fn publish_plan(&self, plan_json: &str) -> Result<PlanPublishedView> {
        // Reading and validating the document needs no ledger state: it is
        // done here, on the caller's task, not in the writer.
        let spec = parse_plan(plan_json, "plan_json")?;
        let code = spec.code.clone();
        let (version, _, created) = self
            .call(|reply| Request::PublishPlan {
                spec: Box::new(spec),
                reply,
            })
            .await?
            .map_err(Error::Ledger)?;
        let plan = self
            .store
            .read_model()
            .plans
            .version(&code, version)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("plan {code} v{version} unpublished")))?;
        Ok(PlanPublishedView { plan, created })
    }

    /// The current version of every plan (`None`), or every version of one.
    pub fn list_plans(&self, code: Option<&str>) -> Result<Vec<PlanVersion>> {
        let model = self.store.read_model();
        match code {
            None => Ok(model.plans.plans().cloned().collect()),
            Some(code) => {
                let versions = model.plans.versions(code);
                if versions.is_empty() {
                    return Err(plan_not_found("code", format!("no plan {}", quoted(code))));
                }
                Ok(versions.to_vec())
            }
        }
    }

    /// One plan version (0: the current one).
    pub fn get_plan(&self, code: &str, version: u32) -> Result<PlanVersion> {
        let key = PlanKey {
            code: code.to_string(),
            version,
        };
        let model = self.store.read_model();
        published(&model, &key, "").map_err(|error| match error {
            // The request's fields are `code` and `version` themselves.
            Error::Ledger(error) => Error::Ledger(LedgerError {
                field: error.field.trim_start_matches('.').to_string(),
                ..error
            }),
            other => other,
        })
    }

    /// Rates the given usage under a plan (published or draft), with coupons,
    /// tax rules and manual lines. Records nothing.
    pub fn quote(&self, request: &QuoteRequest) -> Result<Rating> {
        let (plan, scale) = {
            let model = self.store.read_model();
            choose(&model, request.plan.as_ref(), "plan")?
        };
        let period = if request.period_start.is_empty() && request.period_end.is_empty() {
            plan.spec
                .interval
                .period_containing(today())
                .ok_or_else(|| {
                    LedgerError::new(
                        ErrorCode::PeriodInvalid,
                        "period_start",
                        "today lies outside the plan's billing periods",
                    )
                })?
        } else {
            given_period(&request.period_start, &request.period_end)?
        };
        let usage = quote_usage(&plan.spec, &request.usage)?;
        let coupons = coupons(&request.coupons)?;
        let taxes = taxes(&request.taxes)?;
        let adjustments = adjustments(&request.adjustments)?;
        rate(&RatingInput {
            plan: &plan.spec,
            plan_version: plan.version,
            currency_scale: scale,
            period,
            usage: &usage,
            coupons: &coupons,
            taxes: &taxes,
            adjustments: &adjustments,
        })
        .map_err(|error| in_quote(error, &plan.spec, request).into())
    }

    /// Re-rates customers' recorded usage over a past period under a
    /// candidate plan and compares each with a baseline version, without
    /// coupons, taxes or manual lines. Records nothing.
    pub fn simulate(&self, request: &SimulateRequest) -> Result<Simulation> {
        // The plans, the customers and the stored usage are read under one
        // lock of the read model, so that all of them are as of `as_of_seq`
        // (a version published or a customer created meanwhile is in none or
        // all of them).
        let (candidate, baseline, scale, customers, period, stored) = {
            let model = self.store.read_model();
            let (candidate, scale) = choose(&model, request.candidate.as_ref(), "candidate")?;
            let baseline = match &request.baseline {
                Some(key) => published(&model, key, "baseline")?,
                None => model
                    .plans
                    .current(&candidate.spec.code)
                    .cloned()
                    .ok_or_else(|| {
                        plan_not_found(
                            "baseline",
                            format!(
                                "plan {} has no published version to compare with: publish it, or name a baseline",
                                quoted(&candidate.spec.code)
                            ),
                        )
                    })?,
            };
            if baseline.spec.currency != candidate.spec.currency {
                return Err(LedgerError::new(
                    ErrorCode::PlanMismatch,
                    "baseline",
                    format!(
                        "the baseline {} v{} is priced in {}, the candidate in {}",
                        quoted(&baseline.spec.code),
                        baseline.version,
                        baseline.spec.currency,
                        candidate.spec.currency
                    ),
                )
                .into());
            }
            let customers = simulated_customers(&model, &request.customers)?;
            let period = given_period(&request.period_start, &request.period_end)?;
            let stored = self.stored_usage(
                &model,
                &[&baseline.spec, &candidate.spec],
                period,
                &customers,
            )?;
            (candidate, baseline, scale, customers, period, stored)
        };
        // A customer's usage that overflows is named by the customers asked.
        let gathered = self
            .finish_usage(stored, &customers)
            .map_err(|error| match error {
                Error::Ledger(mut error) if error.field.is_empty() => {
                    error.field = "customers".to_string();
                    Error::Ledger(error)
                }
                other => other,
            })?;
        let (current_usage, simulated_usage) = (&gathered.plans[0], &gathered.plans[1]);
        let no_usage = BTreeMap::new();
        let rate_one =
            |spec: &PlanSpec, version: u32, usage: Option<&BTreeMap<String, ChargeUsage>>| {
                rate(&RatingInput {
                    plan: spec,
                    plan_version: version,
                    currency_scale: scale,
                    period,
                    usage: usage.unwrap_or(&no_usage),
                    coupons: &[],
                    taxes: &[],
                    adjustments: &[],
                })
            };
        let overflow = || {
            LedgerError::new(
                ErrorCode::AmountOverflow,
                "customers",
                "the simulation's totals overflow",
            )
        };
        let mut results = Vec::with_capacity(customers.len());
        let (mut current_total, mut simulated_total) = (Decimal::ZERO, Decimal::ZERO);
        for customer in customers {
            let current = rate_one(
                &baseline.spec,
                baseline.version,
                current_usage.get(&customer),
            )
            .map_err(|error| in_simulation(error, "baseline", &customer))?;
            let simulated = rate_one(
                &candidate.spec,
                candidate.version,
                simulated_usage.get(&customer),
            )
            .map_err(|error| in_simulation(error, "candidate", &customer))?;
            let (now, then) = (current.net_total, simulated.net_total);
            current_total = current_total.checked_add(now).ok_or_else(overflow)?;
            simulated_total = simulated_total.checked_add(then).ok_or_else(overflow)?;
            results.push(CustomerSimulation {
                customer,
                current_total: now,
                simulated_total: then,
                difference: then.checked_sub(now).ok_or_else(overflow)?,
                current: request.explain.then_some(current),
                simulated: request.explain.then_some(simulated),
            });
        }
        Ok(Simulation {
            currency: candidate.spec.currency.clone(),
            baseline_plan: baseline.spec.code.clone(),
            baseline_version: baseline.version,
            candidate_plan: candidate.spec.code.clone(),
            candidate_version: candidate.version,
            period,
            customers: results,
            current_total,
            simulated_total,
            difference: simulated_total
                .checked_sub(current_total)
                .ok_or_else(overflow)?,
            as_of_seq: gathered.as_of_seq,
        })
    }
}

/// The customers a simulation rates, in id order: those named (each known,
/// once), or every customer.
fn simulated_customers(
    model: &ReadModel,
    named: &[String],
) -> std::result::Result<Vec<String>, LedgerError> {
    let catalog = &model.usage.catalog;
    if named.is_empty() {
        return Ok(catalog
            .customers_after("")
            .map(|customer| customer.created.customer_id.clone())
            .collect());
    }
    if named.len() > SIMULATION_CUSTOMERS_MAX {
        return Err(too_many("customers", named.len(), SIMULATION_CUSTOMERS_MAX));
    }
    let mut seen = BTreeSet::new();
    for (index, id) in named.iter().enumerate() {
        if catalog.customer(id).is_none() {
            return Err(LedgerError::new(
                ErrorCode::CustomerNotFound,
                format!("customers[{index}]"),
                format!("no customer {}", quoted(id)),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("customers[{index}]"),
                format!("customer {} is named twice", quoted(id)),
            ));
        }
    }
    Ok(seen.into_iter().collect())
}
