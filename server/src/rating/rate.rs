//! The rating function: checks its input, prices each charge, rounds each
//! line once, adds the commitment true-up and adjustments, then discounts
//! and taxes (see the module documentation of [`super`]).

use super::charge::{self, overflow, Share};
use super::{discount, tax, ChargeUsage, LineKind, RatedLine, Rating, RatingInput};
use crate::error::LedgerError;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use tally_core::error_code::ErrorCode;
use tally_core::money::SCALE_MAX;
use tally_core::plan::{
    validate_tax_rules, PlanError, PlanRejection, Pricing, TaxMode, TEXT_BYTES_MAX,
};

/// A plan, coupon or tax rule error as the API reports it.
pub fn plan_error(error: PlanError) -> LedgerError {
    let code = match error.reason {
        PlanRejection::FieldMissing => ErrorCode::FieldRequired,
        PlanRejection::FieldTooLong => ErrorCode::FieldTooLong,
        PlanRejection::FieldInvalid
        | PlanRejection::Duplicate
        | PlanRejection::ModelMismatch
        | PlanRejection::TiersOutOfOrder => ErrorCode::FieldInvalid,
    };
    LedgerError::new(code, error.field, error.message)
}

/// Rates `input`: the same input always gives the same rating.
pub fn rate(input: &RatingInput) -> Result<Rating, LedgerError> {
    let plan = input.plan;
    let scale = input.currency_scale;
    plan.validate().map_err(|e| plan_error(e).within("plan"))?;
    if scale > SCALE_MAX {
        return Err(LedgerError::new(
            ErrorCode::ScaleOutOfRange,
            "currency_scale",
            format!("scale {scale} exceeds {SCALE_MAX}"),
        ));
    }
    for (index, grant) in input.coupons.iter().enumerate() {
        grant
            .coupon
            .validate(&format!("coupons[{index}]"))
            .map_err(plan_error)?;
    }
    let rules: Vec<_> = input.taxes.iter().collect();
    validate_tax_rules(&rules, "taxes").map_err(plan_error)?;
    for code in input.usage.keys() {
        if !plan.charges.iter().any(|charge| &charge.code == code) {
            return Err(LedgerError::new(
                ErrorCode::ChargeNotFound,
                format!("usage.{code}"),
                format!("plan {} has no charge {code:?}", plan.code),
            ));
        }
    }

    let period = input.period;
    let billing_period = plan
        .interval
        .period_containing(period.start)
        .filter(|billing| period.start < period.end && billing.contains(period))
        .ok_or_else(|| {
            LedgerError::new(
                ErrorCode::PeriodInvalid,
                "period",
                format!(
                    "{period} is not a non-empty part of one {} billing period of plan {}",
                    plan.interval.unit.name(),
                    plan.code
                ),
            )
        })?;
    let share = Share {
        days: period.days(),
        period_days: billing_period.days(),
    };

    let no_usage = ChargeUsage::default();
    let mut lines = Vec::with_capacity(plan.charges.len() + 1 + input.adjustments.len());
    for (index, charge) in plan.charges.iter().enumerate() {
        let usage = input.usage.get(&charge.code).unwrap_or(&no_usage);
        let field = format!("charges[{index}]");
        let priced = charge::price(charge, usage, share, &field)?;
        let amount = exact(plan.rounding.round(priced.unrounded, scale), scale, &field)?;
        lines.push(RatedLine {
            kind: LineKind::Charge,
            code: charge.code.clone(),
            description: charge.description.clone(),
            model: charge.pricing.model().to_string(),
            meter: charge.meter.clone(),
            group: charge.group.clone(),
            timing: match charge.pricing {
                Pricing::Flat { timing, .. } => Some(timing),
                _ => None,
            },
            quantity: priced.quantity,
            free_units: charge.free_units.0,
            billable_quantity: priced.billable_quantity,
            tiers: priced.tiers,
            package: priced.package,
            percentage: priced.percentage,
            proration: priced.proration,
            unrounded: priced.unrounded,
            rounding: amount - priced.unrounded,
            amount,
            ..empty_line()
        });
    }

    if let Some(commitment) = plan.minimum_commitment {
        let (due, proration) = share.of(commitment.0, "minimum_commitment")?;
        let charged = sum(lines.iter().map(|line| line.amount), scale, "lines")?;
        if due > charged {
            let unrounded = due - charged;
            let amount = exact(
                plan.rounding.round(unrounded, scale),
                scale,
                "minimum_commitment",
            )?;
            lines.push(RatedLine {
                kind: LineKind::MinimumCommitment,
                code: "minimum_commitment".into(),
                description: format!("Minimum commitment of {} {}", commitment.0, plan.currency),
                quantity: Decimal::ONE,
                billable_quantity: Decimal::ONE,
                proration,
                unrounded,
                rounding: amount - unrounded,
                amount,
                ..empty_line()
            });
        }
    }

    for (index, adjustment) in input.adjustments.iter().enumerate() {
        let field = format!("adjustments[{index}]");
        if adjustment.reason.trim().is_empty() {
            return Err(LedgerError::new(
                ErrorCode::FieldRequired,
                format!("{field}.reason"),
                "an adjustment states its reason",
            ));
        }
        if adjustment.reason.len() > TEXT_BYTES_MAX {
            return Err(LedgerError::new(
                ErrorCode::FieldTooLong,
                format!("{field}.reason"),
                format!("the reason is longer than {TEXT_BYTES_MAX} bytes"),
            ));
        }
        let amount = adjustment.amount;
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(LedgerError::new(
                ErrorCode::AmountNotPositive,
                format!("{field}.amount"),
                "an adjustment adds to the invoice; credits are credit notes",
            ));
        }
        if amount.normalize().scale() > u32::from(scale) {
            return Err(LedgerError::new(
                ErrorCode::AmountScaleExceeded,
                format!("{field}.amount"),
                format!("{amount} has more decimal places than the currency's {scale}"),
            ));
        }
        let mut amount = amount;
        amount.rescale(u32::from(scale));
        lines.push(RatedLine {
            kind: LineKind::Adjustment,
            code: "adjustment".into(),
            description: adjustment.reason.clone(),
            quantity: Decimal::ONE,
            billable_quantity: Decimal::ONE,
            unrounded: amount,
            amount,
            ..empty_line()
        });
    }

    let amounts: Vec<Decimal> = lines.iter().map(|line| line.amount).collect();
    let subtotal = exact(
        sum(amounts.iter().copied(), scale, "lines")?,
        scale,
        "lines",
    )?;
    let discounts = discount::apply(input.coupons, &amounts, scale, plan.rounding)?;
    let bases: Vec<Decimal> = amounts
        .iter()
        .zip(&discounts.per_line)
        .map(|(amount, discount)| amount - discount)
        .collect();
    let taxes = tax::apply(input.taxes, &bases, scale)?;
    let inclusive = taxes.mode == TaxMode::Inclusive;
    for (((line, discount), base), line_taxes) in lines
        .iter_mut()
        .zip(&discounts.per_line)
        .zip(&bases)
        .zip(taxes.per_line)
    {
        line.discount = *discount;
        line.amount_after_discount = *base;
        line.tax = sum(line_taxes.iter().map(|t| t.amount), scale, "taxes")?;
        line.taxes = line_taxes;
        line.total = if inclusive {
            *base
        } else {
            base.checked_add(line.tax)
                .ok_or_else(|| overflow("taxes"))?
        };
        debug_assert!(line.amount >= Decimal::ZERO && line.amount_after_discount >= Decimal::ZERO);
    }
    let after_discount = sum(bases.iter().copied(), scale, "lines")?;
    let (net_total, total) = if inclusive {
        (after_discount - taxes.total, after_discount)
    } else {
        let total = after_discount
            .checked_add(taxes.total)
            .ok_or_else(|| overflow("taxes"))?;
        (after_discount, total)
    };
    let total = exact(total, scale, "taxes")?;
    Ok(Rating {
        plan: plan.code.clone(),
        plan_version: input.plan_version,
        currency: plan.currency.clone(),
        period,
        billing_period,
        lines,
        subtotal,
        discounts: discounts.applied,
        discount_total: discounts.total,
        tax_mode: taxes.mode,
        taxes: taxes.totals,
        tax_total: taxes.total,
        net_total,
        total,
    })
}

/// `value` exactly at the currency's `scale`: an amount the ledger can post
/// (at most 2^96 - 1 minor units). A `Decimal` too large for that scale
/// would otherwise keep fewer places, silently.
fn exact(value: Decimal, scale: u8, field: &str) -> Result<Decimal, LedgerError> {
    let mut scaled = value;
    scaled.rescale(u32::from(scale));
    if scaled.scale() != u32::from(scale) || scaled != value {
        return Err(overflow(field));
    }
    Ok(scaled)
}

/// The values' sum, starting from zero at the currency's scale (so that no
/// tax at all reads 0.00, like every other amount).
fn sum(
    values: impl Iterator<Item = Decimal>,
    scale: u8,
    field: &str,
) -> Result<Decimal, LedgerError> {
    values
        .into_iter()
        .try_fold(Decimal::new(0, u32::from(scale)), |total, value| {
            total.checked_add(value)
        })
        .ok_or_else(|| overflow(field))
}

fn empty_line() -> RatedLine {
    RatedLine {
        kind: LineKind::Charge,
        code: String::new(),
        description: String::new(),
        model: String::new(),
        meter: None,
        group: BTreeMap::new(),
        timing: None,
        quantity: Decimal::ZERO,
        free_units: Decimal::ZERO,
        billable_quantity: Decimal::ZERO,
        tiers: Vec::new(),
        package: None,
        percentage: None,
        proration: None,
        unrounded: Decimal::ZERO,
        rounding: Decimal::ZERO,
        amount: Decimal::ZERO,
        discount: Decimal::ZERO,
        amount_after_discount: Decimal::ZERO,
        taxes: Vec::new(),
        tax: Decimal::ZERO,
        total: Decimal::ZERO,
    }
}
