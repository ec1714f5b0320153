//! Rating: usage and a price plan become money, exactly and explainably.
//!
//! [`rate`] is a pure function of its [`RatingInput`]: a plan version, the
//! period rated, each charge's usage, the customer's coupons, the tax rules of
//! the customer's jurisdiction, and manual adjustments. It does no I/O, reads
//! no clock and draws no random numbers, so the same input always gives the
//! same [`Rating`], byte for byte, which is what lets a billing run be re-run,
//! an invoice be explained, and a price change be simulated on past usage.
//!
//! The steps, each visible in the result:
//! 1. [`charge`]: each charge's quantity less its free units is priced by its
//!    model at full precision (unit prices may carry more decimals than the
//!    currency); flat fees and the minimum commitment are prorated by day for
//!    a partial period;
//! 2. each line is rounded to the currency's scale once, by the plan's
//!    rounding mode, and the rounding is shown;
//! 3. a true-up line makes the charges up to the minimum commitment;
//! 4. [`discount`]: coupons apply in order to what is left of the subtotal,
//!    never below zero, and the discount is spread over the lines in
//!    proportion to their amounts (to the minor unit, largest remainder);
//! 5. [`tax`]: each rule of the jurisdiction is applied to each line after
//!    discount, exclusive or inclusive, rounded per line or once per invoice.
//!
//! The I/O around it (usage from the read model, plan versions from the
//! journal) is in [`operations`].

pub mod catalog;
pub mod charge;
pub mod discount;
pub mod operations;
mod rate;
pub mod tax;
#[cfg(test)]
mod tests;
pub mod usage;

pub use rate::{plan_error, rate};

use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use tally_core::calendar::Period;
use tally_core::plan::{Coupon, FlatTiming, PlanSpec, TaxMode, TaxRule};

/// The usage a charge is rated on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeUsage {
    /// The meter's aggregate for the period (and the charge's group).
    pub quantity: Decimal,
    /// For a percentage charge: each transaction's amount (the meter's event
    /// values) in the period. The quantity is then their sum.
    pub transactions: Vec<Decimal>,
}

/// A coupon granted to the customer and how much of it is used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCoupon {
    pub coupon: Coupon,
    /// Periods the coupon has already applied to.
    pub periods_used: u32,
    /// For a fixed-amount `once` coupon: what is left of it (none: all of it
    /// if unused, nothing if used).
    pub remaining: Option<Decimal>,
}

/// A manual line with the reason for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub reason: String,
    /// Not negative, at the currency's scale (credits are credit notes).
    pub amount: Decimal,
}

/// Everything rating reads.
#[derive(Debug, Clone, Copy)]
pub struct RatingInput<'a> {
    pub plan: &'a PlanSpec,
    pub plan_version: u32,
    /// The currency's scale (decimal places), e.g. 2 for USD, 0 for JPY.
    pub currency_scale: u8,
    /// The days rated: the plan's whole billing period, or a part of one
    /// (then flat fees and the commitment are prorated by day).
    pub period: Period,
    /// By charge code; a charge without usage has a quantity of zero.
    pub usage: &'a BTreeMap<String, ChargeUsage>,
    pub coupons: &'a [AppliedCoupon],
    /// The rules of the customer's jurisdiction, all applied
    /// (`tally_core::plan::rules_for`).
    pub taxes: &'a [TaxRule],
    pub adjustments: &'a [Adjustment],
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Charge,
    MinimumCommitment,
    Adjustment,
}

impl LineKind {
    pub fn name(self) -> &'static str {
        match self {
            LineKind::Charge => "charge",
            LineKind::MinimumCommitment => "minimum_commitment",
            LineKind::Adjustment => "adjustment",
        }
    }
}

/// The units of one tier and what they cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedTier {
    /// The tier's bounds: above `from`, through `up_to` (none: no end).
    pub from: Decimal,
    pub up_to: Option<Decimal>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub flat_fee: Decimal,
    /// `quantity × unit_price + flat_fee`, unrounded.
    pub amount: Decimal,
}

/// How a package charge counted its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageDetail {
    pub size: Decimal,
    /// Started blocks: the billable quantity divided by the size, rounded up.
    pub blocks: Decimal,
    pub price: Decimal,
}

/// How a percentage charge added up its transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PercentageDetail {
    pub transactions: u64,
    /// The transactions' total amount.
    pub volume: Decimal,
    pub rate: Decimal,
    pub fixed_fee: Decimal,
    /// Transactions whose fee was raised to the minimum, or cut to the maximum.
    pub raised_to_min: u64,
    pub cut_to_max: u64,
}

/// A fee charged for part of its period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proration {
    /// The whole period's amount.
    pub full_amount: Decimal,
    pub days: i64,
    pub period_days: i64,
}

/// One tax on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineTax {
    pub code: String,
    pub rate: Decimal,
    /// Rounded for a per-line rule; unrounded for a per-invoice one (its
    /// rounding is in the invoice's [`TaxTotal`]).
    pub amount: Decimal,
}

/// One line of the result, with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RatedLine {
    pub kind: LineKind,
    /// The charge's code (`minimum_commitment` for the true-up line,
    /// `adjustment` for a manual line).
    pub code: String,
    pub description: String,
    /// The pricing model (`graduated`, ...); empty for other kinds.
    pub model: String,
    pub meter: Option<String>,
    pub group: BTreeMap<String, String>,
    pub timing: Option<FlatTiming>,
    /// The usage quantity (1 for a flat fee or an adjustment).
    pub quantity: Decimal,
    pub free_units: Decimal,
    /// The quantity less the free units, not below zero.
    pub billable_quantity: Decimal,
    pub tiers: Vec<AppliedTier>,
    pub package: Option<PackageDetail>,
    pub percentage: Option<PercentageDetail>,
    pub proration: Option<Proration>,
    /// The amount at full precision.
    pub unrounded: Decimal,
    /// `amount - unrounded`.
    pub rounding: Decimal,
    /// Rounded to the currency's scale, before discount.
    pub amount: Decimal,
    pub discount: Decimal,
    pub amount_after_discount: Decimal,
    pub taxes: Vec<LineTax>,
    /// The sum of `taxes`.
    pub tax: Decimal,
    /// Exclusive tax: after discount plus tax. Inclusive: after discount.
    pub total: Decimal,
}

/// A coupon's effect on this rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedDiscount {
    pub coupon: String,
    pub amount: Decimal,
    /// For a fixed-amount `once` coupon: what is left for later periods.
    pub remaining: Option<Decimal>,
}

/// One tax rule over the whole rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaxTotal {
    pub code: String,
    pub rate: Decimal,
    /// The amounts taxed (after discount; inclusive: without the tax).
    pub taxable: Decimal,
    /// Sum of the lines' taxes, before the invoice's rounding.
    pub unrounded: Decimal,
    /// `amount - unrounded` (zero for a per-line rule).
    pub rounding: Decimal,
    pub amount: Decimal,
}

/// The result of rating: lines, discounts, taxes and totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rating {
    pub plan: String,
    pub plan_version: u32,
    pub currency: String,
    pub period: Period,
    /// The plan's whole billing period the rated days lie in.
    pub billing_period: Period,
    pub lines: Vec<RatedLine>,
    /// The lines' amounts before discount.
    pub subtotal: Decimal,
    pub discounts: Vec<AppliedDiscount>,
    pub discount_total: Decimal,
    pub tax_mode: TaxMode,
    pub taxes: Vec<TaxTotal>,
    pub tax_total: Decimal,
    /// After discount, without tax.
    pub net_total: Decimal,
    /// What the customer owes: net plus tax.
    pub total: Decimal,
}
