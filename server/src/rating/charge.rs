//! One charge's price at full precision, with the working shown.
//!
//! Every model answers with the unrounded amount and the pieces it was
//! made of (tiers, blocks, transactions, proration); rounding to the
//! currency happens once, afterwards, in [`super::rate`]. Arithmetic is
//! checked: an overflow is an error naming the charge, never a wrap or a
//! silently shortened figure.

use super::{AppliedTier, ChargeUsage, PackageDetail, PercentageDetail, Proration};
use crate::error::LedgerError;
use rust_decimal::Decimal;
use tally_core::error_code::ErrorCode;
use tally_core::plan::{Charge, Pricing, Tier};

/// A charge priced, before rounding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Priced {
    pub quantity: Decimal,
    pub billable_quantity: Decimal,
    pub tiers: Vec<AppliedTier>,
    pub package: Option<PackageDetail>,
    pub percentage: Option<PercentageDetail>,
    pub proration: Option<Proration>,
    pub unrounded: Decimal,
}

/// The share of a billing period rated: `days` of `period_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub days: i64,
    pub period_days: i64,
}

impl Share {
    pub fn is_whole(self) -> bool {
        self.days == self.period_days
    }

    /// `amount × days / period_days`: one multiplication and one division,
    /// so the only inexactness is the division's 28th significant digit.
    pub fn of(
        self,
        amount: Decimal,
        field: &str,
    ) -> Result<(Decimal, Option<Proration>), LedgerError> {
        if self.is_whole() {
            return Ok((amount, None));
        }
        let prorated = amount
            .checked_mul(Decimal::from(self.days))
            .and_then(|v| v.checked_div(Decimal::from(self.period_days)))
            .ok_or_else(|| overflow(field))?;
        Ok((
            prorated,
            Some(Proration {
                full_amount: amount,
                days: self.days,
                period_days: self.period_days,
            }),
        ))
    }
}

pub fn overflow(field: &str) -> LedgerError {
    LedgerError::new(
        ErrorCode::AmountOverflow,
        field,
        "the amount exceeds what a decimal holds exactly",
    )
}

fn mul(a: Decimal, b: Decimal, field: &str) -> Result<Decimal, LedgerError> {
    a.checked_mul(b).ok_or_else(|| overflow(field))
}

fn add(a: Decimal, b: Decimal, field: &str) -> Result<Decimal, LedgerError> {
    a.checked_add(b).ok_or_else(|| overflow(field))
}

/// Prices `charge` for `usage` over `share` of its period. `field` names
/// the charge in errors (`charges[2]`).
pub fn price(
    charge: &Charge,
    usage: &ChargeUsage,
    share: Share,
    field: &str,
) -> Result<Priced, LedgerError> {
    match &charge.pricing {
        Pricing::Flat { amount, .. } => {
            let (unrounded, proration) = share.of(amount.0, field)?;
            Ok(Priced {
                quantity: Decimal::ONE,
                billable_quantity: Decimal::ONE,
                proration,
                unrounded,
                ..Priced::default()
            })
        }
        Pricing::Percentage {
            rate,
            fixed_fee,
            min_per_transaction,
            max_per_transaction,
        } => percentage(
            usage,
            rate.0,
            fixed_fee.0,
            min_per_transaction.map(|d| d.0),
            max_per_transaction.map(|d| d.0),
            field,
        ),
        Pricing::PerUnit { unit_price } => {
            let mut priced = metered(charge, usage, field)?;
            let amount = mul(priced.billable_quantity, unit_price.0, field)?;
            priced.tiers.push(AppliedTier {
                from: Decimal::ZERO,
                up_to: None,
                quantity: priced.billable_quantity,
                unit_price: unit_price.0,
                flat_fee: Decimal::ZERO,
                amount,
            });
            priced.unrounded = amount;
            Ok(priced)
        }
        Pricing::Graduated { tiers } => {
            let mut priced = metered(charge, usage, field)?;
            priced.tiers = graduated(tiers, priced.billable_quantity, field)?;
            priced.unrounded = tier_sum(&priced.tiers, field)?;
            Ok(priced)
        }
        Pricing::Volume { tiers } => {
            let mut priced = metered(charge, usage, field)?;
            priced.tiers = volume(tiers, priced.billable_quantity, field)?;
            priced.unrounded = tier_sum(&priced.tiers, field)?;
            Ok(priced)
        }
        Pricing::Package { size, price } => {
            let mut priced = metered(charge, usage, field)?;
            let billable = priced.billable_quantity;
            let mut blocks = billable
                .checked_div(size.0)
                .ok_or_else(|| overflow(field))?
                .ceil();
            // The division keeps 28 significant digits: at the extremes its
            // ceiling can be one block off, so the count is settled exactly.
            if mul(blocks, size.0, field)? < billable {
                blocks = add(blocks, Decimal::ONE, field)?;
            } else if blocks > Decimal::ZERO
                && mul(blocks - Decimal::ONE, size.0, field)? >= billable
            {
                blocks -= Decimal::ONE;
            }
            priced.unrounded = mul(blocks, price.0, field)?;
            priced.package = Some(PackageDetail {
                size: size.0,
                blocks,
                price: price.0,
            });
            Ok(priced)
        }
    }
}

/// A metered charge's quantity, checked, less its free units.
fn metered(charge: &Charge, usage: &ChargeUsage, field: &str) -> Result<Priced, LedgerError> {
    let quantity = usage.quantity;
    if quantity.is_sign_negative() && !quantity.is_zero() {
        return Err(LedgerError::new(
            ErrorCode::QuantityNegative,
            field,
            format!("usage of {quantity} is below zero"),
        ));
    }
    Ok(Priced {
        quantity,
        billable_quantity: (quantity - charge.free_units.0).max(Decimal::ZERO),
        ..Priced::default()
    })
}

fn tier_sum(tiers: &[AppliedTier], field: &str) -> Result<Decimal, LedgerError> {
    tiers
        .iter()
        .try_fold(Decimal::ZERO, |sum, tier| add(sum, tier.amount, field))
}

/// The tiers' bounds: tier `i` covers `(from_i, up_to_i]`.
fn bounds(tiers: &[Tier]) -> impl Iterator<Item = (Decimal, Option<Decimal>, &Tier)> {
    let mut from = Decimal::ZERO;
    tiers.iter().map(move |tier| {
        let up_to = tier.up_to.map(|d| d.0);
        let start = from;
        if let Some(end) = up_to {
            from = end;
        }
        (start, up_to, tier)
    })
}

/// Each tier prices the units that fall in it; a tier's flat fee is charged
/// once any unit falls in it.
fn graduated(
    tiers: &[Tier],
    quantity: Decimal,
    field: &str,
) -> Result<Vec<AppliedTier>, LedgerError> {
    let mut applied = Vec::new();
    for (from, up_to, tier) in bounds(tiers) {
        if quantity <= from {
            break;
        }
        let top = up_to.map_or(quantity, |end| end.min(quantity));
        let units = top - from;
        let amount = add(
            mul(units, tier.unit_price.0, field)?,
            tier.flat_fee.0,
            field,
        )?;
        applied.push(AppliedTier {
            from,
            up_to,
            quantity: units,
            unit_price: tier.unit_price.0,
            flat_fee: tier.flat_fee.0,
            amount,
        });
    }
    Ok(applied)
}

/// The tier the whole quantity falls in prices every unit, plus its flat
/// fee. No usage falls in no tier and costs nothing.
fn volume(tiers: &[Tier], quantity: Decimal, field: &str) -> Result<Vec<AppliedTier>, LedgerError> {
    if quantity.is_zero() {
        return Ok(Vec::new());
    }
    let (from, up_to, tier) = bounds(tiers)
        .find(|(_, up_to, _)| up_to.is_none_or(|end| quantity <= end))
        .ok_or_else(|| {
            LedgerError::new(ErrorCode::FieldInvalid, field, "the last tier has an end")
        })?;
    let amount = add(
        mul(quantity, tier.unit_price.0, field)?,
        tier.flat_fee.0,
        field,
    )?;
    Ok(vec![AppliedTier {
        from,
        up_to,
        quantity,
        unit_price: tier.unit_price.0,
        flat_fee: tier.flat_fee.0,
        amount,
    }])
}

/// Each transaction's fee is `amount × rate / 100 + fixed_fee`, kept
/// between the minimum and maximum per transaction.
fn percentage(
    usage: &ChargeUsage,
    rate: Decimal,
    fixed_fee: Decimal,
    min: Option<Decimal>,
    max: Option<Decimal>,
    field: &str,
) -> Result<Priced, LedgerError> {
    let mut detail = PercentageDetail {
        transactions: usage.transactions.len() as u64,
        volume: Decimal::ZERO,
        rate,
        fixed_fee,
        raised_to_min: 0,
        cut_to_max: 0,
    };
    let mut total = Decimal::ZERO;
    for (index, &amount) in usage.transactions.iter().enumerate() {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(LedgerError::new(
                ErrorCode::QuantityNegative,
                format!("{field}.transactions[{index}]"),
                format!("transaction amount {amount} is below zero"),
            ));
        }
        detail.volume = add(detail.volume, amount, field)?;
        let share = mul(amount, rate, field)?
            .checked_div(Decimal::ONE_HUNDRED)
            .ok_or_else(|| overflow(field))?;
        let mut fee = add(share, fixed_fee, field)?;
        if let Some(min) = min.filter(|&min| fee < min) {
            fee = min;
            detail.raised_to_min += 1;
        }
        if let Some(max) = max.filter(|&max| fee > max) {
            fee = max;
            detail.cut_to_max += 1;
        }
        total = add(total, fee, field)?;
    }
    Ok(Priced {
        quantity: detail.volume,
        billable_quantity: detail.volume,
        percentage: Some(detail),
        unrounded: total,
        ..Priced::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;
    use tally_core::decimal::Dec;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn tier(up_to: Option<&str>, unit_price: &str) -> Tier {
        Tier {
            up_to: up_to.map(|t| Dec(d(t))),
            unit_price: Dec(d(unit_price)),
            flat_fee: Dec::ZERO,
        }
    }

    fn charge(pricing: Pricing) -> Charge {
        Charge {
            code: "c".into(),
            description: String::new(),
            meter: Some("m".into()),
            group: Default::default(),
            free_units: Dec::ZERO,
            pricing,
        }
    }

    const WHOLE: Share = Share {
        days: 30,
        period_days: 30,
    };

    fn amount(charge: &Charge, quantity: &str) -> Decimal {
        let usage = ChargeUsage {
            quantity: d(quantity),
            transactions: Vec::new(),
        };
        price(charge, &usage, WHOLE, "charges[0]")
            .unwrap()
            .unrounded
    }

    /// Stripe's tiered pricing example: 1-5 at $7, 6-10 at $6.50, 11+ at $6
    /// (https://docs.stripe.com/products-prices/pricing-models#tiered-pricing).
    fn stripe_tiers() -> Vec<Tier> {
        vec![
            tier(Some("5"), "7"),
            tier(Some("10"), "6.50"),
            tier(None, "6"),
        ]
    }

    #[test]
    fn stripe_volume_tiers() {
        let volume = charge(Pricing::Volume {
            tiers: stripe_tiers(),
        });
        for (quantity, expected) in [
            ("1", "7"),
            ("5", "35"),
            ("6", "39"),
            ("20", "120"),
            ("25", "150"),
        ] {
            assert_eq!(amount(&volume, quantity), d(expected), "volume {quantity}");
        }
    }

    #[test]
    fn stripe_graduated_tiers() {
        let graduated = charge(Pricing::Graduated {
            tiers: stripe_tiers(),
        });
        for (quantity, expected) in [("6", "41.50"), ("20", "127.50"), ("25", "157.50")] {
            assert_eq!(
                amount(&graduated, quantity),
                d(expected),
                "graduated {quantity}"
            );
        }
        let usage = ChargeUsage {
            quantity: d("20"),
            transactions: Vec::new(),
        };
        let priced = price(&graduated, &usage, WHOLE, "c").unwrap();
        let shown: Vec<_> = priced
            .tiers
            .iter()
            .map(|t| (t.quantity, t.unit_price, t.amount))
            .collect();
        assert_eq!(
            shown,
            [
                (d("5"), d("7"), d("35")),
                (d("5"), d("6.50"), d("32.50")),
                (d("10"), d("6"), d("60"))
            ]
        );
    }

    /// The graduated example of issue #5 (a common SaaS API price list):
    /// 0-1,000 at $0.10, 1,001-10,000 at $0.05, above at $0.01.
    #[test]
    fn api_calls_graduated_and_volume() {
        let tiers = vec![
            tier(Some("1000"), "0.10"),
            tier(Some("10000"), "0.05"),
            tier(None, "0.01"),
        ];
        let graduated = charge(Pricing::Graduated {
            tiers: tiers.clone(),
        });
        assert_eq!(amount(&graduated, "15000"), d("600"));
        let volume = charge(Pricing::Volume { tiers });
        assert_eq!(amount(&volume, "15000"), d("150"));
    }

    /// Lago's package example: $5 per 100 units, the first 100 free;
    /// 201 units are 101 billable units, two started packages
    /// (https://getlago.com/docs/guide/plans/charges/charge-models/package).
    #[test]
    fn lago_package_with_free_units() {
        let mut package = charge(Pricing::Package {
            size: Dec(d("100")),
            price: Dec(d("5")),
        });
        package.free_units = Dec(d("100"));
        assert_eq!(amount(&package, "201"), d("10"));
        assert_eq!(amount(&package, "200"), d("5"));
        assert_eq!(amount(&package, "100"), d("0"));
        assert_eq!(amount(&package, "0"), d("0"));
    }

    #[test]
    fn package_blocks_are_exact_where_the_division_is_not() {
        // 3 x 10^27 + 0.1 units in blocks of 3: the quotient's 29th digit is
        // lost in the division, yet one more block is started.
        let package = charge(Pricing::Package {
            size: Dec(d("3")),
            price: Dec(d("1")),
        });
        assert_eq!(
            amount(&package, "3000000000000000000000000000.1"),
            d("1000000000000000000000000001")
        );
        assert_eq!(
            amount(&package, "3000000000000000000000000000"),
            d("1000000000000000000000000000")
        );
    }

    #[test]
    fn volume_tier_flat_fees_and_zero_usage() {
        let volume = charge(Pricing::Volume {
            tiers: vec![
                Tier {
                    up_to: Some(Dec(d("10"))),
                    unit_price: Dec(d("1")),
                    flat_fee: Dec(d("5")),
                },
                Tier {
                    up_to: None,
                    unit_price: Dec(d("0.5")),
                    flat_fee: Dec(d("20")),
                },
            ],
        });
        assert_eq!(amount(&volume, "10"), d("15"));
        assert_eq!(amount(&volume, "11"), d("25.5"));
        assert_eq!(amount(&volume, "0"), d("0"));
    }

    #[test]
    fn percentage_with_fixed_fee_and_bounds() {
        // 2.9 % + 0.30 per transaction, at least 0.50 and at most 5.
        let percentage = charge(Pricing::Percentage {
            rate: Dec(d("2.9")),
            fixed_fee: Dec(d("0.30")),
            min_per_transaction: Some(Dec(d("0.50"))),
            max_per_transaction: Some(Dec(d("5"))),
        });
        let usage = ChargeUsage {
            quantity: Decimal::ZERO,
            transactions: vec![d("1"), d("100"), d("1000")],
        };
        let priced = price(&percentage, &usage, WHOLE, "c").unwrap();
        // 1 -> 0.329 raised to 0.50; 100 -> 3.20; 1000 -> 29.30 cut to 5.
        assert_eq!(priced.unrounded, d("8.70"));
        let detail = priced.percentage.unwrap();
        assert_eq!((detail.raised_to_min, detail.cut_to_max), (1, 1));
        assert_eq!(detail.volume, d("1101"));
        let refund = ChargeUsage {
            quantity: Decimal::ZERO,
            transactions: vec![d("-1")],
        };
        let error = price(&percentage, &refund, WHOLE, "charges[3]").unwrap_err();
        assert_eq!(error.field, "charges[3].transactions[0]");
        assert_eq!(error.code, ErrorCode::QuantityNegative);
    }

    #[test]
    fn flat_fees_prorate_by_day() {
        let flat = charge(Pricing::Flat {
            amount: Dec(d("20")),
            timing: Default::default(),
        });
        let usage = ChargeUsage::default();
        let half = Share {
            days: 15,
            period_days: 30,
        };
        let priced = price(&flat, &usage, half, "c").unwrap();
        assert_eq!(priced.unrounded, d("10"));
        assert_eq!(priced.proration.unwrap().full_amount, d("20"));
    }

    #[test]
    fn negative_usage_is_refused() {
        let per_unit = charge(Pricing::PerUnit {
            unit_price: Dec(d("1")),
        });
        let usage = ChargeUsage {
            quantity: d("-3"),
            transactions: Vec::new(),
        };
        let error = price(&per_unit, &usage, WHOLE, "charges[1]").unwrap_err();
        assert_eq!(
            (error.code, error.field.as_str()),
            (ErrorCode::QuantityNegative, "charges[1]")
        );
    }

    fn tiers_strategy() -> impl Strategy<Value = Vec<Tier>> {
        (
            prop::collection::vec((1u32..1_000, 0u32..10_000, 0u32..500), 0..5),
            0u32..10_000,
        )
            .prop_map(|(bounded, last_price)| {
                let mut up_to = 0u32;
                let mut tiers: Vec<Tier> = bounded
                    .into_iter()
                    .map(|(width, cents, fee)| {
                        up_to += width;
                        Tier {
                            up_to: Some(Dec(Decimal::from(up_to))),
                            unit_price: Dec(Decimal::new(i64::from(cents), 3)),
                            flat_fee: Dec(Decimal::new(i64::from(fee), 1)),
                        }
                    })
                    .collect();
                tiers.push(Tier {
                    up_to: None,
                    unit_price: Dec(Decimal::new(i64::from(last_price), 3)),
                    flat_fee: Dec::ZERO,
                });
                tiers
            })
    }

    proptest! {
        #[test]
        fn graduated_is_monotone_and_its_tiers_add_up(
            tiers in tiers_strategy(),
            a in 0u64..20_000,
            b in 0u64..20_000,
            fraction in 0u32..1000,
        ) {
            let graduated = charge(Pricing::Graduated { tiers });
            let (low, high) = (a.min(b), a.max(b));
            let low = Decimal::from(low) + Decimal::new(i64::from(fraction), 3);
            let high = Decimal::from(high) + Decimal::new(i64::from(fraction), 3);
            let usage = |q| ChargeUsage { quantity: q, transactions: Vec::new() };
            let at_low = price(&graduated, &usage(low), WHOLE, "c").unwrap();
            let at_high = price(&graduated, &usage(high), WHOLE, "c").unwrap();
            prop_assert!(at_low.unrounded <= at_high.unrounded);
            for priced in [&at_low, &at_high] {
                let tier_sum: Decimal = priced.tiers.iter().map(|t| t.amount).sum();
                prop_assert_eq!(tier_sum, priced.unrounded);
                let unit_sum: Decimal = priced.tiers.iter().map(|t| t.quantity).sum();
                prop_assert_eq!(unit_sum, priced.billable_quantity);
                prop_assert!(priced.unrounded >= Decimal::ZERO);
            }
        }

        #[test]
        fn volume_prices_every_unit_in_one_tier(
            tiers in tiers_strategy(),
            quantity in 0u64..20_000,
        ) {
            let volume = charge(Pricing::Volume { tiers });
            let usage = ChargeUsage { quantity: Decimal::from(quantity), transactions: Vec::new() };
            let priced = price(&volume, &usage, WHOLE, "c").unwrap();
            prop_assert!(priced.tiers.len() <= 1);
            let tier_sum: Decimal = priced.tiers.iter().map(|t| t.amount).sum();
            prop_assert_eq!(tier_sum, priced.unrounded);
            prop_assert!(priced.unrounded >= Decimal::ZERO);
        }
    }
}
