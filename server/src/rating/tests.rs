//! Rating as a whole: worked examples, rounding and tax cases, and the
//! properties every rating keeps.

use super::*;
use proptest::prelude::*;
use std::str::FromStr;
use tally_core::calendar::{BillingInterval, Day, IntervalUnit};
use tally_core::decimal::Dec;
use tally_core::error_code::ErrorCode;
use tally_core::plan::{
    Charge, CouponDiscount, CouponDuration, Pricing, RoundingMode, TaxRounding, Tier,
};

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn day(text: &str) -> Day {
    text.parse().unwrap()
}

fn october() -> Period {
    Period {
        start: day("2026-10-01"),
        end: day("2026-11-01"),
    }
}

fn plan(currency: &str, charges: Vec<Charge>) -> PlanSpec {
    PlanSpec {
        code: "pro".into(),
        name: "Pro".into(),
        currency: currency.into(),
        interval: BillingInterval {
            unit: IntervalUnit::Monthly,
            anchor: day("2026-01-01"),
        },
        charges,
        minimum_commitment: None,
        rounding: RoundingMode::HalfUp,
    }
}

fn metered(code: &str, pricing: Pricing) -> Charge {
    Charge {
        code: code.into(),
        description: String::new(),
        meter: Some(code.into()),
        group: BTreeMap::new(),
        free_units: Dec::ZERO,
        pricing,
    }
}

fn flat(code: &str, amount: &str) -> Charge {
    Charge {
        code: code.into(),
        description: String::new(),
        meter: None,
        group: BTreeMap::new(),
        free_units: Dec::ZERO,
        pricing: Pricing::Flat {
            amount: Dec(d(amount)),
            timing: FlatTiming::InAdvance,
        },
    }
}

fn per_unit(code: &str, price: &str) -> Charge {
    metered(
        code,
        Pricing::PerUnit {
            unit_price: Dec(d(price)),
        },
    )
}

fn usage(pairs: &[(&str, &str)]) -> BTreeMap<String, ChargeUsage> {
    pairs
        .iter()
        .map(|(code, quantity)| {
            (
                code.to_string(),
                ChargeUsage {
                    quantity: d(quantity),
                    transactions: Vec::new(),
                },
            )
        })
        .collect()
}

fn vat(rate: &str, mode: TaxMode, granularity: TaxRounding) -> TaxRule {
    TaxRule {
        code: "vat".into(),
        country: "DE".into(),
        region: None,
        rate: Dec(d(rate)),
        mode,
        rounding: RoundingMode::HalfUp,
        granularity,
    }
}

struct Case {
    plan: PlanSpec,
    scale: u8,
    period: Period,
    usage: BTreeMap<String, ChargeUsage>,
    coupons: Vec<AppliedCoupon>,
    taxes: Vec<TaxRule>,
    adjustments: Vec<Adjustment>,
}

impl Case {
    fn new(plan: PlanSpec, scale: u8) -> Case {
        Case {
            plan,
            scale,
            period: october(),
            usage: BTreeMap::new(),
            coupons: Vec::new(),
            taxes: Vec::new(),
            adjustments: Vec::new(),
        }
    }

    fn rate(&self) -> Result<Rating, LedgerError> {
        rate(&RatingInput {
            plan: &self.plan,
            plan_version: 1,
            currency_scale: self.scale,
            period: self.period,
            usage: &self.usage,
            coupons: &self.coupons,
            taxes: &self.taxes,
            adjustments: &self.adjustments,
        })
    }
}

use crate::error::LedgerError;

/// Lago's minimum commitment: a $100 commitment with $50 of usage bills a
/// $50 true-up (https://getlago.com/docs/guide/plans/commitments/minimum-commitment).
#[test]
fn lago_minimum_commitment_true_up() {
    let mut plan = plan("USD", vec![per_unit("api_calls", "0.05")]);
    plan.minimum_commitment = Some(Dec(d("100")));
    let mut case = Case::new(plan, 2);
    case.usage = usage(&[("api_calls", "1000")]);
    let rating = case.rate().unwrap();
    assert_eq!(rating.lines.len(), 2);
    assert_eq!(rating.lines[0].amount, d("50.00"));
    let true_up = &rating.lines[1];
    assert_eq!(true_up.kind, LineKind::MinimumCommitment);
    assert_eq!(true_up.amount.to_string(), "50.00");
    assert_eq!(rating.total.to_string(), "100.00");
    // Usage above the commitment needs no true-up.
    case.usage = usage(&[("api_calls", "3000")]);
    let rating = case.rate().unwrap();
    assert_eq!(rating.lines.len(), 1);
    assert_eq!(rating.total, d("150"));
}

#[test]
fn a_whole_invoice_with_coupon_and_exclusive_tax() {
    let mut plan = plan(
        "USD",
        vec![
            flat("base", "20"),
            metered(
                "api_calls",
                Pricing::Graduated {
                    tiers: vec![
                        Tier {
                            up_to: Some(Dec(d("1000"))),
                            unit_price: Dec(d("0.10")),
                            flat_fee: Dec::ZERO,
                        },
                        Tier {
                            up_to: None,
                            unit_price: Dec(d("0.0125")),
                            flat_fee: Dec::ZERO,
                        },
                    ],
                },
            ),
        ],
    );
    plan.charges[1].free_units = Dec(d("100"));
    let mut case = Case::new(plan, 2);
    // 1,337 calls less 100 free: 1,000 at 0.10 = 100, 237 at 0.0125 = 2.9625.
    case.usage = usage(&[("api_calls", "1337")]);
    case.coupons = vec![AppliedCoupon {
        coupon: Coupon {
            code: "welcome".into(),
            discount: CouponDiscount::Percentage {
                percent: Dec(d("10")),
            },
            duration: CouponDuration::Periods { count: 3 },
        },
        periods_used: 0,
        remaining: None,
    }];
    case.taxes = vec![vat("19", TaxMode::Exclusive, TaxRounding::PerLine)];
    let rating = case.rate().unwrap();
    let usage_line = &rating.lines[1];
    assert_eq!(usage_line.billable_quantity, d("1237"));
    assert_eq!(usage_line.unrounded, d("102.9625"));
    assert_eq!(usage_line.amount.to_string(), "102.96");
    assert_eq!(usage_line.rounding, d("-0.0025"));
    // Subtotal 122.96; 10 % off is 12.296 -> 12.30, spread 2.00 / 10.30.
    assert_eq!(rating.subtotal, d("122.96"));
    assert_eq!(rating.discount_total.to_string(), "12.30");
    assert_eq!(rating.lines[0].discount, d("2.00"));
    assert_eq!(usage_line.discount, d("10.30"));
    // 19 % of 18.00 = 3.42; of 92.66 = 17.6054 -> 17.61.
    assert_eq!(rating.lines[0].tax, d("3.42"));
    assert_eq!(usage_line.tax, d("17.61"));
    assert_eq!(rating.tax_total, d("21.03"));
    assert_eq!(rating.net_total, d("110.66"));
    assert_eq!(rating.total.to_string(), "131.69");
}

#[test]
fn inclusive_tax_per_invoice() {
    // Three lines of 9.99 including 19 %: each holds 1.595042..., 4.785126... in all -> 4.79.
    let plan = plan(
        "EUR",
        vec![flat("a", "9.99"), flat("b", "9.99"), flat("c", "9.99")],
    );
    let mut case = Case::new(plan, 2);
    case.taxes = vec![vat("19", TaxMode::Inclusive, TaxRounding::PerInvoice)];
    let rating = case.rate().unwrap();
    assert_eq!(rating.total, d("29.97"));
    assert_eq!(rating.tax_total.to_string(), "4.79");
    assert_eq!(rating.net_total, d("25.18"));
    assert!(rating.taxes[0].rounding != Decimal::ZERO);
    // Per line, each rounds to 1.60: 4.80 in all.
    case.taxes = vec![vat("19", TaxMode::Inclusive, TaxRounding::PerLine)];
    let rating = case.rate().unwrap();
    assert_eq!(rating.tax_total, d("4.80"));
    assert_eq!(rating.total, d("29.97"));
    assert_eq!(rating.lines[0].total, d("9.99"));
}

#[test]
fn a_zero_decimal_currency() {
    // JPY: 0.35 yen per call; 1,001 calls are 350.35 yen -> 350, tax 10 % -> 35.
    let plan = plan("JPY", vec![per_unit("calls", "0.35")]);
    let mut case = Case::new(plan, 0);
    case.usage = usage(&[("calls", "1001")]);
    case.taxes = vec![vat("10", TaxMode::Exclusive, TaxRounding::PerLine)];
    let rating = case.rate().unwrap();
    assert_eq!(rating.lines[0].amount.to_string(), "350");
    assert_eq!(rating.lines[0].rounding, d("-0.35"));
    assert_eq!(rating.total.to_string(), "385");
}

#[test]
fn a_three_decimal_currency() {
    // KWD (3 decimals): 0.0125 per unit x 333 = 4.1625 -> half up 4.163,
    // half even 4.162; 5 % tax 0.20815 -> 0.208.
    let mut plan = plan("KWD", vec![per_unit("units", "0.0125")]);
    let mut case = Case::new(plan.clone(), 3);
    case.usage = usage(&[("units", "333")]);
    case.taxes = vec![vat("5", TaxMode::Exclusive, TaxRounding::PerLine)];
    let rating = case.rate().unwrap();
    assert_eq!(rating.lines[0].amount.to_string(), "4.163");
    assert_eq!(rating.tax_total.to_string(), "0.208");
    assert_eq!(rating.total.to_string(), "4.371");
    plan.rounding = RoundingMode::HalfEven;
    case.plan = plan;
    assert_eq!(case.rate().unwrap().lines[0].amount.to_string(), "4.162");
}

#[test]
fn a_partial_period_prorates_flat_fees_and_the_commitment() {
    // October has 31 days; 16 of them: 31 x 16 / 31 = 16.00, commitment 62 x 16 / 31 = 32.
    let mut plan = plan("USD", vec![flat("base", "31"), per_unit("calls", "1")]);
    plan.minimum_commitment = Some(Dec(d("62")));
    let mut case = Case::new(plan, 2);
    case.period = Period {
        start: day("2026-10-16"),
        end: day("2026-11-01"),
    };
    case.usage = usage(&[("calls", "3")]);
    let rating = case.rate().unwrap();
    let base = &rating.lines[0];
    assert_eq!(base.amount, d("16.00"));
    let proration = base.proration.as_ref().unwrap();
    assert_eq!((proration.days, proration.period_days), (16, 31));
    assert_eq!(rating.lines[2].amount, d("13.00"));
    assert_eq!(rating.total, d("32.00"));
    assert_eq!(rating.billing_period, october());
}

#[test]
fn no_tax_reads_zero_at_the_currency_scale() {
    let plan = plan("USD", vec![flat("base", "10")]);
    let rating = Case::new(plan, 2).rate().unwrap();
    assert_eq!(rating.tax_total.to_string(), "0.00");
    assert_eq!(rating.lines[0].tax.to_string(), "0.00");
    assert_eq!(rating.total.to_string(), "10.00");
}

#[test]
fn an_amount_beyond_what_the_ledger_can_post_is_an_overflow() {
    // 10^15 a unit x 10^13 units is 10^28 dollars: 10^30 cents, more than
    // the 2^96 - 1 minor units an amount may hold; no cents may be dropped.
    let plan = plan("USD", vec![per_unit("calls", "1000000000000000")]);
    let mut case = Case::new(plan, 2);
    case.usage = usage(&[("calls", "10000000000000")]);
    let error = case.rate().unwrap_err();
    assert_eq!(
        (error.code, error.field.as_str()),
        (ErrorCode::AmountOverflow, "charges[0]")
    );
}

/// Kill Bill's proration example: a $20 monthly plan billed Apr 11-May 11,
/// upgraded on Apr 26 to a $30 plan: the unused 15 of 30 days of the old fee
/// are worth $10 (the credit invoicing will issue), and the new plan costs $15
/// for the rest of the period
/// (https://docs.killbill.io/latest/userguide_subscription.html, "Plan change").
#[test]
fn kill_bill_upgrade_proration() {
    let monthly_from_the_11th = |amount: &str| {
        let mut plan = plan("USD", vec![flat("base", amount)]);
        plan.interval.anchor = day("2026-04-11");
        plan
    };
    let rest_of_period = Period {
        start: day("2026-04-26"),
        end: day("2026-05-11"),
    };
    let mut old = Case::new(monthly_from_the_11th("20"), 2);
    old.period = rest_of_period;
    let unused = old.rate().unwrap();
    assert_eq!(unused.total.to_string(), "10.00");
    let proration = unused.lines[0].proration.as_ref().unwrap();
    assert_eq!((proration.days, proration.period_days), (15, 30));
    let mut new = Case::new(monthly_from_the_11th("30"), 2);
    new.period = rest_of_period;
    assert_eq!(new.rate().unwrap().total.to_string(), "15.00");
}

#[test]
fn adjustments_are_lines_with_reasons() {
    let plan = plan("USD", vec![flat("base", "10")]);
    let mut case = Case::new(plan, 2);
    case.adjustments = vec![Adjustment {
        reason: "Onboarding session".into(),
        amount: d("150"),
    }];
    let rating = case.rate().unwrap();
    assert_eq!(rating.lines[1].kind, LineKind::Adjustment);
    assert_eq!(rating.lines[1].description, "Onboarding session");
    assert_eq!(rating.total, d("160"));
    case.adjustments[0].amount = d("1.005");
    let error = case.rate().unwrap_err();
    assert_eq!(
        (error.code, error.field.as_str()),
        (ErrorCode::AmountScaleExceeded, "adjustments[0].amount")
    );
}

#[test]
fn bad_inputs_are_named() {
    let plan = plan("USD", vec![flat("base", "10")]);
    let mut case = Case::new(plan, 2);
    case.usage = usage(&[("storage", "1")]);
    let error = case.rate().unwrap_err();
    assert_eq!(
        (error.code, error.field.as_str()),
        (ErrorCode::ChargeNotFound, "usage.storage")
    );
    case.usage.clear();
    case.period = Period {
        start: day("2026-10-20"),
        end: day("2026-11-10"),
    };
    assert_eq!(case.rate().unwrap_err().code, ErrorCode::PeriodInvalid);
    case.period = Period {
        start: day("2026-10-20"),
        end: day("2026-10-20"),
    };
    assert_eq!(case.rate().unwrap_err().code, ErrorCode::PeriodInvalid);
    case.period = october();
    case.taxes = vec![
        vat("19", TaxMode::Exclusive, TaxRounding::PerLine),
        TaxRule {
            code: "other".into(),
            ..vat("7", TaxMode::Inclusive, TaxRounding::PerLine)
        },
    ];
    assert_eq!(case.rate().unwrap_err().field, "taxes[1].mode");
}

#[test]
fn never_below_zero_with_a_large_fixed_coupon() {
    let plan = plan("USD", vec![flat("base", "10"), per_unit("calls", "0.01")]);
    let mut case = Case::new(plan, 2);
    case.usage = usage(&[("calls", "250")]);
    case.coupons = vec![AppliedCoupon {
        coupon: Coupon {
            code: "big".into(),
            discount: CouponDiscount::Fixed {
                amount: Dec(d("500")),
            },
            duration: CouponDuration::Once,
        },
        periods_used: 0,
        remaining: None,
    }];
    case.taxes = vec![vat("19", TaxMode::Exclusive, TaxRounding::PerLine)];
    let rating = case.rate().unwrap();
    assert_eq!(rating.total, Decimal::ZERO);
    assert_eq!(rating.discounts[0].remaining, Some(d("487.50")));
    assert!(rating
        .lines
        .iter()
        .all(|l| l.amount_after_discount.is_zero()));
}

fn pricing_strategy() -> impl Strategy<Value = Pricing> {
    let price = (0i64..100_000, 0u32..5).prop_map(|(m, s)| Dec(Decimal::new(m, s)));
    let tiers =
        prop::collection::vec((1i64..1_000, price.clone(), price.clone()), 1..4).prop_map(|raw| {
            let mut up_to = 0;
            let count = raw.len();
            raw.into_iter()
                .enumerate()
                .map(|(i, (width, unit_price, flat_fee))| {
                    up_to += width;
                    Tier {
                        up_to: (i + 1 < count).then(|| Dec(Decimal::from(up_to))),
                        unit_price,
                        flat_fee,
                    }
                })
                .collect::<Vec<_>>()
        });
    prop_oneof![
        price
            .clone()
            .prop_map(|unit_price| Pricing::PerUnit { unit_price }),
        tiers.clone().prop_map(|tiers| Pricing::Graduated { tiers }),
        tiers.prop_map(|tiers| Pricing::Volume { tiers }),
        (1i64..500, price.clone()).prop_map(|(size, price)| Pricing::Package {
            size: Dec(Decimal::from(size)),
            price
        }),
        (0i64..1000, price).prop_map(|(rate, fixed_fee)| Pricing::Percentage {
            rate: Dec(Decimal::new(rate, 1)),
            fixed_fee,
            min_per_transaction: None,
            max_per_transaction: None,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any plan, usage, coupon and tax: no line is negative, the lines add
    /// up to the totals, and rating again gives identical bytes.
    #[test]
    fn ratings_add_up_are_never_negative_and_repeat_exactly(
        pricings in prop::collection::vec(pricing_strategy(), 1..5),
        quantities in prop::collection::vec((0i64..50_000, 0u32..3), 5),
        transactions in prop::collection::vec(0i64..100_000, 0..6),
        flat_fee in 0i64..10_000,
        scale in 0u8..4,
        percent_off in 0i64..=100,
        tax_rate in 0i64..300,
        inclusive in any::<bool>(),
        per_invoice in any::<bool>(),
        start_day in 1u8..28,
        commitment in prop::option::of(0i64..100_000),
    ) {
        let mut charges = vec![flat("base", &Decimal::new(flat_fee, 2).to_string())];
        let mut usage = BTreeMap::new();
        for (index, pricing) in pricings.into_iter().enumerate() {
            let code = format!("c{index}");
            let (m, s) = quantities[index];
            usage.insert(code.clone(), ChargeUsage {
                quantity: Decimal::new(m, s),
                transactions: transactions.iter().map(|&t| Decimal::new(t, 2)).collect(),
            });
            charges.push(metered(&code, pricing));
        }
        let mut plan = plan("XTS", charges);
        plan.minimum_commitment = commitment.map(|c| Dec(Decimal::new(c, 2)));
        let mut case = Case::new(plan, scale);
        case.period = Period {
            start: Day::from_ymd(2026, 10, start_day).unwrap(),
            end: day("2026-11-01"),
        };
        case.usage = usage;
        case.coupons = vec![AppliedCoupon {
            coupon: Coupon {
                code: "off".into(),
                discount: CouponDiscount::Percentage { percent: Dec(Decimal::from(percent_off)) },
                duration: CouponDuration::Forever,
            },
            periods_used: 0,
            remaining: None,
        }];
        case.taxes = vec![vat(
            &Decimal::new(tax_rate, 1).to_string(),
            if inclusive { TaxMode::Inclusive } else { TaxMode::Exclusive },
            if per_invoice { TaxRounding::PerInvoice } else { TaxRounding::PerLine },
        )];
        let rating = case.rate().unwrap();
        let again = case.rate().unwrap();
        prop_assert_eq!(
            serde_json::to_vec(&rating).unwrap(),
            serde_json::to_vec(&again).unwrap()
        );
        let unit = Decimal::new(1, u32::from(scale));
        for line in &rating.lines {
            prop_assert!(line.amount >= Decimal::ZERO, "{:?}", line);
            prop_assert!(line.amount_after_discount >= Decimal::ZERO);
            prop_assert!(line.tax >= Decimal::ZERO);
            prop_assert_eq!(line.amount.scale(), u32::from(scale));
            prop_assert_eq!(line.amount - line.unrounded, line.rounding);
            prop_assert!(line.rounding.abs() < unit);
            if !line.tiers.is_empty() {
                let tiers: Decimal = line.tiers.iter().map(|t| t.amount).sum();
                prop_assert_eq!(tiers, line.unrounded);
            }
        }
        let amounts: Decimal = rating.lines.iter().map(|l| l.amount).sum();
        prop_assert_eq!(amounts, rating.subtotal);
        let discounts: Decimal = rating.lines.iter().map(|l| l.discount).sum();
        prop_assert_eq!(discounts, rating.discount_total);
        prop_assert!(rating.discount_total <= rating.subtotal);
        prop_assert_eq!(rating.total.scale(), u32::from(scale));
        if inclusive {
            prop_assert_eq!(rating.total, rating.subtotal - rating.discount_total);
        } else {
            prop_assert_eq!(rating.total, rating.net_total + rating.tax_total);
        }
        prop_assert!(rating.total >= Decimal::ZERO && rating.net_total >= Decimal::ZERO);
    }
}

/// A line near the largest decimal with an exclusive tax on top: the line's
/// total (amount + tax) no longer fits. That is an overflow error, not a
/// panic (the quantities of a quote are the client's).
#[test]
fn a_line_total_beyond_a_decimal_is_an_overflow_not_a_panic() {
    // 10^15 a unit x 79,228,162,514,264 units fits (7.92e28); 1 % on top does not.
    let plan = plan("JPY", vec![per_unit("calls", "1000000000000000")]);
    let mut case = Case::new(plan, 0);
    case.usage = usage(&[("calls", "79228162514264")]);
    case.taxes = vec![vat("1", TaxMode::Exclusive, TaxRounding::PerLine)];
    let error = case.rate().unwrap_err();
    assert_eq!(error.code, ErrorCode::AmountOverflow);
    // Stacked rules whose taxes each fit but not together.
    let plan = self::plan("JPY", vec![per_unit("calls", "1000000000000000")]);
    let mut case = Case::new(plan, 0);
    case.usage = usage(&[("calls", "792281625142")]);
    case.taxes = (0..101)
        .map(|index| TaxRule {
            code: format!("t{index}"),
            ..vat("100", TaxMode::Exclusive, TaxRounding::PerLine)
        })
        .collect();
    assert_eq!(case.rate().unwrap_err().code, ErrorCode::AmountOverflow);
}
