//! Taxes on the lines after discount.
//!
//! Every rule given applies (a jurisdiction's country-wide and regional
//! rates stack). Exclusive: each rule's tax is `base × rate / 100`, added on
//! top. Inclusive: the base already holds every rule's tax, so rule `j`'s
//! share is `base × rate_j / (100 + Σ rates)` (one division each, so no
//! intermediate rounding). A per-line rule rounds each line's tax; a
//! per-invoice rule leaves the lines' taxes unrounded and rounds their sum
//! once — the difference is shown as the rule's rounding. Inclusive taxes
//! never take out more than the amount holds: where rounding several rules
//! up would (lines of a few minor units), a later rule gets what is left.

use super::charge::overflow;
use super::{LineTax, TaxTotal};
use crate::error::LedgerError;
use rust_decimal::Decimal;
use tally_core::plan::{RoundingMode, TaxMode, TaxRounding, TaxRule};

/// Taxes per line and per rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taxes {
    pub mode: TaxMode,
    /// Per line: each rule's tax.
    pub per_line: Vec<Vec<LineTax>>,
    pub totals: Vec<TaxTotal>,
    /// The rules' rounded amounts added up.
    pub total: Decimal,
}

/// Taxes `bases` (each line after discount, at the currency's `scale`) by
/// `rules` (already checked: valid, one mode).
pub fn apply(rules: &[TaxRule], bases: &[Decimal], scale: u8) -> Result<Taxes, LedgerError> {
    let mode = rules.first().map_or(TaxMode::Exclusive, |rule| rule.mode);
    let rate_sum = rules
        .iter()
        .try_fold(Decimal::ZERO, |sum, rule| sum.checked_add(rule.rate.0))
        .ok_or_else(|| overflow("taxes"))?;
    let divisor = match mode {
        TaxMode::Exclusive => Decimal::ONE_HUNDRED,
        TaxMode::Inclusive => Decimal::ONE_HUNDRED + rate_sum,
    };
    let inclusive = mode == TaxMode::Inclusive;
    let gross = bases
        .iter()
        .try_fold(Decimal::ZERO, |sum, &base| sum.checked_add(base))
        .ok_or_else(|| overflow("taxes"))?;
    // Inclusive: the tax a line (and the invoice) already holds, so that no
    // rounding takes out more than is there.
    let mut held = vec![Decimal::ZERO; bases.len()];
    let mut invoice_held = Decimal::ZERO;
    let mut per_line = vec![Vec::with_capacity(rules.len()); bases.len()];
    let mut totals = Vec::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        let field = format!("taxes[{index}]");
        let mut unrounded = Decimal::ZERO;
        for (line, &base) in bases.iter().enumerate() {
            let exact = base
                .checked_mul(rule.rate.0)
                .and_then(|v| v.checked_div(divisor))
                .ok_or_else(|| overflow(&field))?;
            let mut amount = match rule.granularity {
                TaxRounding::PerLine => rule.rounding.round(exact, scale),
                TaxRounding::PerInvoice => exact,
            };
            if inclusive {
                // What is left in the line; a per-line rule's share of it in
                // whole minor units (an earlier per-invoice rule may have
                // left a fraction of one).
                let room = match rule.granularity {
                    TaxRounding::PerLine => RoundingMode::Down.round(base - held[line], scale),
                    TaxRounding::PerInvoice => base - held[line],
                };
                amount = amount.min(room);
                held[line] += amount;
            }
            unrounded = unrounded
                .checked_add(amount)
                .ok_or_else(|| overflow(&field))?;
            per_line[line].push(LineTax {
                code: rule.code.clone(),
                rate: rule.rate.0,
                amount,
            });
        }
        let mut amount = rule.rounding.round(unrounded, scale);
        debug_assert!(rule.granularity == TaxRounding::PerInvoice || amount == unrounded);
        if inclusive {
            amount = amount.min(gross - invoice_held);
            invoice_held += amount;
        }
        totals.push(TaxTotal {
            code: rule.code.clone(),
            rate: rule.rate.0,
            taxable: Decimal::ZERO,
            unrounded,
            rounding: amount - unrounded,
            amount,
        });
    }
    let total = totals
        .iter()
        .try_fold(Decimal::new(0, u32::from(scale)), |sum, t| {
            sum.checked_add(t.amount)
        })
        .ok_or_else(|| overflow("taxes"))?;
    // What was taxed: the bases themselves, or (inclusive) the bases less
    // the tax they hold.
    let taxable = match mode {
        TaxMode::Exclusive => gross,
        TaxMode::Inclusive => gross - total,
    };
    for t in &mut totals {
        t.taxable = taxable;
    }
    Ok(Taxes {
        mode,
        per_line,
        totals,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tally_core::decimal::Dec;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn rule(code: &str, rate: &str, mode: TaxMode, granularity: TaxRounding) -> TaxRule {
        TaxRule {
            code: code.into(),
            country: "DE".into(),
            region: None,
            rate: Dec(d(rate)),
            mode,
            rounding: RoundingMode::HalfUp,
            granularity,
        }
    }

    #[test]
    fn exclusive_per_line_rounds_each_line() {
        // 19 % of 0.05 is 0.0095: 0.01 per line, 0.03 for three lines.
        let vat = rule("vat", "19", TaxMode::Exclusive, TaxRounding::PerLine);
        let bases = [d("0.05"), d("0.05"), d("0.05")];
        let taxes = apply(&[vat], &bases, 2).unwrap();
        assert_eq!(taxes.total, d("0.03"));
        assert_eq!(taxes.totals[0].rounding, d("0"));
        assert_eq!(taxes.per_line[0][0].amount, d("0.01"));
    }

    #[test]
    fn exclusive_per_invoice_rounds_once() {
        // The same lines rounded once: 0.0285 -> 0.03; and 0.0095 x 2 = 0.019 -> 0.02.
        let vat = rule("vat", "19", TaxMode::Exclusive, TaxRounding::PerInvoice);
        let taxes = apply(
            std::slice::from_ref(&vat),
            &[d("0.05"), d("0.05"), d("0.05")],
            2,
        )
        .unwrap();
        assert_eq!(taxes.total, d("0.03"));
        let taxes = apply(&[vat], &[d("0.05"), d("0.05")], 2).unwrap();
        assert_eq!(
            (
                taxes.totals[0].unrounded,
                taxes.totals[0].rounding,
                taxes.total
            ),
            (d("0.0190"), d("0.0010"), d("0.02"))
        );
        // Per line the same two lines give 0.01 + 0.01.
        let per_line = rule("vat", "19", TaxMode::Exclusive, TaxRounding::PerLine);
        assert_eq!(
            apply(&[per_line], &[d("0.05"), d("0.05")], 2)
                .unwrap()
                .total,
            d("0.02")
        );
        let per_line = rule("vat", "19", TaxMode::Exclusive, TaxRounding::PerLine);
        let three = [d("0.03"), d("0.03"), d("0.03")];
        // 0.0057 each: 0.01 x 3 = 0.03 per line, against 0.0171 -> 0.02 once.
        assert_eq!(apply(&[per_line], &three, 2).unwrap().total, d("0.03"));
        let once = rule("vat", "19", TaxMode::Exclusive, TaxRounding::PerInvoice);
        assert_eq!(apply(&[once], &three, 2).unwrap().total, d("0.02"));
    }

    #[test]
    fn inclusive_tax_is_taken_out_of_the_price() {
        // 119.00 including 19 % holds 19.00 of tax.
        let vat = rule("vat", "19", TaxMode::Inclusive, TaxRounding::PerLine);
        let taxes = apply(&[vat], &[d("119.00")], 2).unwrap();
        assert_eq!(taxes.total, d("19.00"));
        assert_eq!(taxes.totals[0].taxable, d("100.00"));
        // 10.00 including 19 %: 1.596638... -> 1.60.
        let vat = rule("vat", "19", TaxMode::Inclusive, TaxRounding::PerLine);
        assert_eq!(apply(&[vat], &[d("10.00")], 2).unwrap().total, d("1.60"));
    }

    #[test]
    fn stacked_rules_in_a_zero_decimal_currency() {
        // JPY: 1,234 yen with 10 % national and 5 % regional tax: 123.4 -> 123, 61.7 -> 62.
        let national = rule("national", "10", TaxMode::Exclusive, TaxRounding::PerLine);
        let regional = rule("regional", "5", TaxMode::Exclusive, TaxRounding::PerLine);
        let taxes = apply(&[national, regional], &[d("1234")], 0).unwrap();
        assert_eq!(taxes.totals[0].amount, d("123"));
        assert_eq!(taxes.totals[1].amount, d("62"));
        assert_eq!(taxes.total, d("185"));
    }
}
