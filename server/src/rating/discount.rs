//! Coupons: applied in order to what is left of the subtotal, before tax,
//! never below zero, then spread over the lines.
//!
//! A discount must land on lines because tax is computed per line after
//! discount, and revenue per charge is booked net of it. The spread is in
//! proportion to the lines' amounts, to the minor unit: each line gets the
//! floor of its exact share, and the minor units left over go to the lines
//! with the largest remainders (the first such line on a tie), so the lines'
//! discounts add up to the discount exactly and none exceeds its line.

use super::charge::overflow;
use super::{AppliedCoupon, AppliedDiscount};
use crate::error::LedgerError;
use rust_decimal::{Decimal, RoundingStrategy};
use tally_core::error_code::ErrorCode;
use tally_core::plan::{CouponDiscount, CouponDuration, RoundingMode};

/// The coupons' effect: each applicable coupon, the total, and each line's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discounts {
    pub applied: Vec<AppliedDiscount>,
    pub total: Decimal,
    pub per_line: Vec<Decimal>,
}

/// What a coupon may still take off this period, if it applies at all.
fn available(grant: &AppliedCoupon) -> Option<CouponDiscount> {
    let used = grant.periods_used;
    let active = match grant.coupon.duration {
        CouponDuration::Once => used == 0 || grant.remaining.is_some(),
        CouponDuration::Periods { count } => used < count,
        CouponDuration::Forever => true,
    };
    if !active {
        return None;
    }
    Some(match (&grant.coupon.discount, grant.coupon.duration) {
        (CouponDiscount::Fixed { amount }, CouponDuration::Once) => CouponDiscount::Fixed {
            amount: grant.remaining.unwrap_or(amount.0).into(),
        },
        (discount, _) => discount.clone(),
    })
}

/// Applies `coupons` to lines of `amounts` (each at the currency's `scale`).
pub fn apply(
    coupons: &[AppliedCoupon],
    amounts: &[Decimal],
    scale: u8,
    rounding: RoundingMode,
) -> Result<Discounts, LedgerError> {
    let subtotal = amounts
        .iter()
        .try_fold(Decimal::ZERO, |sum, &a| sum.checked_add(a))
        .ok_or_else(|| overflow("lines"))?;
    let mut applied = Vec::new();
    let mut total = Decimal::ZERO;
    for (index, grant) in coupons.iter().enumerate() {
        let Some(discount) = available(grant) else {
            continue;
        };
        let left = subtotal - total;
        let (amount, remaining) = match discount {
            CouponDiscount::Percentage { percent } => {
                let exact = left
                    .checked_mul(percent.0)
                    .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
                    .ok_or_else(|| overflow(&format!("coupons[{index}]")))?;
                (rounding.round(exact, scale).min(left), None)
            }
            CouponDiscount::Fixed { amount } => {
                let field = if grant.remaining.is_some() {
                    format!("coupons[{index}].remaining")
                } else {
                    format!("coupons[{index}].discount.amount")
                };
                if amount.0.is_sign_negative() || amount.0.normalize().scale() > u32::from(scale) {
                    return Err(LedgerError::new(
                        ErrorCode::AmountScaleExceeded,
                        field,
                        format!(
                            "{} is not an amount of the plan's currency (scale {scale})",
                            amount.0
                        ),
                    ));
                }
                let taken = amount.0.min(left);
                let once = grant.coupon.duration == CouponDuration::Once;
                (taken, once.then(|| at_scale(amount.0 - taken, scale)))
            }
        };
        total += amount;
        applied.push(AppliedDiscount {
            coupon: grant.coupon.code.clone(),
            amount: at_scale(amount, scale),
            remaining,
        });
    }
    let per_line = spread(at_scale(total, scale), amounts, subtotal, scale);
    debug_assert_eq!(per_line.iter().sum::<Decimal>(), total);
    Ok(Discounts {
        applied,
        total: at_scale(total, scale),
        per_line,
    })
}

fn at_scale(mut value: Decimal, scale: u8) -> Decimal {
    value.rescale(u32::from(scale));
    value
}

/// A non-negative amount at `scale` as a count of minor units.
fn minor(value: Decimal, scale: u8) -> Option<u128> {
    let mut scaled = value;
    scaled.rescale(u32::from(scale));
    (scaled.scale() == u32::from(scale) && !scaled.is_sign_negative())
        .then(|| scaled.mantissa().unsigned_abs())
}

/// Spreads `total` (at most `subtotal`, both at `scale`) over `amounts` in
/// proportion: each line the floor of its exact share, the units left over
/// to the largest remainders.
fn spread(total: Decimal, amounts: &[Decimal], subtotal: Decimal, scale: u8) -> Vec<Decimal> {
    let zero = at_scale(Decimal::ZERO, scale);
    if total.is_zero() || subtotal.is_zero() {
        return vec![zero; amounts.len()];
    }
    debug_assert!(total <= subtotal);
    let from_minor = |units: u128| Decimal::from_i128_with_scale(units as i128, u32::from(scale));
    match spread_minor(total, amounts, subtotal, scale) {
        Some(shares) => shares.into_iter().map(from_minor).collect(),
        None => spread_decimal(total, amounts, subtotal, scale),
    }
}

/// The exact spread in minor units, when every `total × amount` fits in
/// 128 bits (amounts up to about 10^19 minor units: every realistic invoice).
fn spread_minor(
    total: Decimal,
    amounts: &[Decimal],
    subtotal: Decimal,
    scale: u8,
) -> Option<Vec<u128>> {
    let total = minor(total, scale)?;
    let subtotal = minor(subtotal, scale)?;
    let mut shares = Vec::with_capacity(amounts.len());
    let mut remainders = Vec::with_capacity(amounts.len());
    for &amount in amounts {
        let product = total.checked_mul(minor(amount, scale)?)?;
        shares.push(product / subtotal);
        remainders.push(product % subtotal);
    }
    // Each floor is less than a unit short, so fewer units are left than lines.
    let mut left = total - shares.iter().sum::<u128>();
    debug_assert!(left < amounts.len() as u128);
    let mut order: Vec<usize> = (0..amounts.len()).collect();
    order.sort_by(|&a, &b| remainders[b].cmp(&remainders[a]).then(a.cmp(&b)));
    for index in order {
        if left == 0 {
            break;
        }
        shares[index] += 1;
        left -= 1;
    }
    Some(shares)
}

/// The spread for amounts too large for [`spread_minor`]: shares at 28
/// significant digits, so a floor may be off by more than a unit. The units
/// are then settled in bulk, by remainder order, within each line's room:
/// still exact in sum, never above a line, the same for the same input.
fn spread_decimal(
    total: Decimal,
    amounts: &[Decimal],
    subtotal: Decimal,
    scale: u8,
) -> Vec<Decimal> {
    let mut shares: Vec<(Decimal, Decimal)> = amounts
        .iter()
        .map(|&amount| {
            // The ratio (at most 1) first where total × amount overflows.
            let exact = total
                .checked_mul(amount)
                .and_then(|product| product.checked_div(subtotal))
                .unwrap_or_else(|| amount / subtotal * total)
                .min(amount);
            let floor = at_scale(
                exact.round_dp_with_strategy(u32::from(scale), RoundingStrategy::ToZero),
                scale,
            );
            (floor, exact - floor)
        })
        .collect();
    let mut left = total - shares.iter().map(|(floor, _)| *floor).sum::<Decimal>();
    let mut order: Vec<usize> = (0..amounts.len()).collect();
    order.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
    for &index in &order {
        if left <= Decimal::ZERO {
            break;
        }
        let given = left.min(amounts[index] - shares[index].0);
        shares[index].0 += given;
        left -= given;
    }
    for &index in order.iter().rev() {
        if left >= Decimal::ZERO {
            break;
        }
        let taken = (-left).min(shares[index].0);
        shares[index].0 -= taken;
        left += taken;
    }
    debug_assert!(left.is_zero());
    shares
        .into_iter()
        .map(|(share, _)| at_scale(share, scale))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;
    use tally_core::decimal::Dec;
    use tally_core::plan::Coupon;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn grant(discount: CouponDiscount, duration: CouponDuration, used: u32) -> AppliedCoupon {
        AppliedCoupon {
            coupon: Coupon {
                code: "c".into(),
                discount,
                duration,
            },
            periods_used: used,
            remaining: None,
        }
    }

    #[test]
    fn a_percentage_spreads_over_lines_to_the_cent() {
        let ten = grant(
            CouponDiscount::Percentage {
                percent: Dec(d("10")),
            },
            CouponDuration::Forever,
            7,
        );
        let lines = [d("10.00"), d("10.00"), d("13.33")];
        let out = apply(&[ten], &lines, 2, RoundingMode::HalfUp).unwrap();
        assert_eq!(out.total, d("3.33"));
        assert_eq!(out.per_line.iter().sum::<Decimal>(), d("3.33"));
        assert_eq!(out.per_line, [d("1.00"), d("1.00"), d("1.33")]);
    }

    #[test]
    fn a_fixed_once_coupon_carries_its_remainder_and_never_goes_below_zero() {
        let fifty = grant(
            CouponDiscount::Fixed {
                amount: Dec(d("50")),
            },
            CouponDuration::Once,
            0,
        );
        let out = apply(
            std::slice::from_ref(&fifty),
            &[d("30.00")],
            2,
            RoundingMode::HalfUp,
        )
        .unwrap();
        assert_eq!(out.total, d("30.00"));
        assert_eq!(out.applied[0].remaining, Some(d("20.00")));
        // Next period: the remainder is what is left.
        let mut next = fifty.clone();
        next.periods_used = 1;
        next.remaining = Some(d("20"));
        let out = apply(&[next], &[d("45.00")], 2, RoundingMode::HalfUp).unwrap();
        assert_eq!(
            (out.total, out.applied[0].remaining),
            (d("20.00"), Some(d("0.00")))
        );
        // Used up without a remainder given: it no longer applies.
        let mut spent = fifty;
        spent.periods_used = 1;
        assert!(apply(&[spent], &[d("45.00")], 2, RoundingMode::HalfUp)
            .unwrap()
            .applied
            .is_empty());
    }

    #[test]
    fn durations_end() {
        let coupon = |used| {
            grant(
                CouponDiscount::Percentage {
                    percent: Dec(d("20")),
                },
                CouponDuration::Periods { count: 3 },
                used,
            )
        };
        let amounts = [d("100")];
        assert_eq!(
            apply(&[coupon(2)], &amounts, 0, RoundingMode::HalfUp)
                .unwrap()
                .total,
            d("20")
        );
        assert!(apply(&[coupon(3)], &amounts, 0, RoundingMode::HalfUp)
            .unwrap()
            .applied
            .is_empty());
    }

    #[test]
    fn a_fixed_amount_finer_than_the_currency_is_refused() {
        let coupon = grant(
            CouponDiscount::Fixed {
                amount: Dec(d("0.5")),
            },
            CouponDuration::Forever,
            0,
        );
        let error = apply(&[coupon], &[d("100")], 0, RoundingMode::HalfUp).unwrap_err();
        assert_eq!(error.field, "coupons[0].discount.amount");
    }

    proptest! {
        #[test]
        fn spreads_add_up_and_stay_within_lines(
            cents in prop::collection::vec(0i64..1_000_000, 1..12),
            share in 0u32..=1000,
        ) {
            let amounts: Vec<Decimal> = cents.iter().map(|&c| Decimal::new(c, 2)).collect();
            let subtotal: Decimal = amounts.iter().sum();
            let total = (subtotal * Decimal::new(i64::from(share), 3))
                .round_dp_with_strategy(2, RoundingStrategy::ToZero);
            let per_line = spread(total, &amounts, subtotal, 2);
            prop_assert_eq!(per_line.iter().sum::<Decimal>(), total);
            for (part, amount) in per_line.iter().zip(&amounts) {
                prop_assert!(*part >= Decimal::ZERO && part <= amount);
            }
        }

        /// Amounts so large that total × amount overflows take the inexact
        /// path; the shares still add up exactly and stay within their lines.
        #[test]
        fn huge_spreads_add_up_too(
            units in prop::collection::vec(0i64..1_000_000_000, 1..8),
            share in 0u32..=1000,
        ) {
            let amounts: Vec<Decimal> = units
                .iter()
                .map(|&u| Decimal::from(u) * Decimal::from(10_000_000_000_000_000i64) + Decimal::new(u % 100, 2))
                .collect();
            let subtotal: Decimal = amounts.iter().sum();
            let total = (subtotal * Decimal::new(i64::from(share), 3))
                .round_dp_with_strategy(2, RoundingStrategy::ToZero);
            let per_line = spread(total, &amounts, subtotal, 2);
            prop_assert_eq!(per_line.iter().sum::<Decimal>(), total);
            for (part, amount) in per_line.iter().zip(&amounts) {
                prop_assert!(*part >= Decimal::ZERO && part <= amount);
            }
        }
    }
}
