//! An exact, order-independent running sum of decimals.
//!
//! `rust_decimal`'s own addition rounds when a result's digits do not fit (it
//! drops scale to make room), which would make a sum depend on the order of its
//! terms and lose cents silently. This sum never rounds: it keeps the positive
//! and the negative terms apart as integers at the finest scale seen, and fails
//! instead of rounding.
//!
//! Overflow rule, the same in every order and every split into partial sums:
//! the sum overflows when the positive terms, or the negative terms, summed as
//! an integer at the finest scale among the terms, exceed `u128`, or when the
//! total does not fit a `Decimal` (96-bit mantissa) once trailing zeros are
//! dropped. A partial sum's integers are never larger than the whole's (fewer
//! terms, scale no finer), so a partial overflows only if the whole does.

use rust_decimal::Decimal;

/// A sum of decimals, exact or overflowed (sticky).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExactSum {
    /// The positive terms' total, in units of 10^-scale.
    positive: u128,
    /// The negative terms' total magnitude, in units of 10^-scale.
    negative: u128,
    scale: u32,
    overflowed: bool,
}

impl ExactSum {
    pub(crate) fn add(&mut self, term: Decimal) {
        let term_sum = ExactSum {
            positive: if term.is_sign_negative() {
                0
            } else {
                term.mantissa().unsigned_abs()
            },
            negative: if term.is_sign_negative() {
                term.mantissa().unsigned_abs()
            } else {
                0
            },
            scale: term.scale(),
            overflowed: false,
        };
        self.merge(&term_sum);
    }

    pub(crate) fn merge(&mut self, other: &ExactSum) {
        if self.overflowed || other.overflowed {
            self.overflowed = true;
            return;
        }
        let scale = self.scale.max(other.scale);
        let combined = (|| {
            let positive = rescale(self.positive, self.scale, scale)?.checked_add(rescale(
                other.positive,
                other.scale,
                scale,
            )?)?;
            let negative = rescale(self.negative, self.scale, scale)?.checked_add(rescale(
                other.negative,
                other.scale,
                scale,
            )?)?;
            Some((positive, negative))
        })();
        match combined {
            Some((positive, negative)) => {
                self.positive = positive;
                self.negative = negative;
                self.scale = scale;
            }
            None => self.overflowed = true,
        }
    }

    /// The exact total, normalized; `None` if the sum overflowed.
    pub(crate) fn total(&self) -> Option<Decimal> {
        if self.overflowed {
            return None;
        }
        let (mut magnitude, negative) = if self.positive >= self.negative {
            (self.positive - self.negative, false)
        } else {
            (self.negative - self.positive, true)
        };
        let mut scale = self.scale;
        while scale > 0 && magnitude % 10 == 0 {
            magnitude /= 10;
            scale -= 1;
        }
        if magnitude > tally_core::money::AMOUNT_MINOR_MAX {
            return None;
        }
        debug_assert!(scale <= 28, "a Decimal's scale is at most 28");
        let mantissa = magnitude as i128;
        Some(Decimal::from_i128_with_scale(
            if negative { -mantissa } else { mantissa },
            scale,
        ))
    }
}

fn rescale(value: u128, from: u32, to: u32) -> Option<u128> {
    debug_assert!(from <= to);
    10u128.checked_pow(to - from)?.checked_mul(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn sum(terms: &[Decimal]) -> Option<Decimal> {
        let mut sum = ExactSum::default();
        for term in terms {
            sum.add(*term);
        }
        sum.total()
    }

    #[test]
    fn exact_where_decimal_addition_rounds() {
        // Goal: a total that needs more digits than a Decimal holds is an error, never rounded.
        let big = d("79228162514264337593543950.335");
        assert!(
            big.checked_add(d("0.0001")).is_some(),
            "Decimal rounds this sum"
        );
        assert_eq!(sum(&[big, d("0.0001")]), None);
        assert_eq!(sum(&[Decimal::MAX, Decimal::ONE]), None);
    }

    #[test]
    fn order_does_not_matter_near_the_limit() {
        // Goal: MAX + MAX - MAX is MAX in every order (intermediates may exceed a Decimal).
        let terms = [Decimal::MAX, Decimal::MAX, -Decimal::MAX];
        for order in [[0, 1, 2], [0, 2, 1], [2, 0, 1]] {
            let ordered: Vec<Decimal> = order.iter().map(|&i| terms[i]).collect();
            assert_eq!(sum(&ordered), Some(Decimal::MAX));
        }
    }

    #[test]
    fn totals_are_normalized() {
        // Goal: 0.5 + 0.50 is 1, -0 is 0: one form per value.
        assert_eq!(sum(&[d("0.5"), d("0.50")]).unwrap().to_string(), "1");
        assert_eq!(sum(&[d("-1.25"), d("0.25")]).unwrap().to_string(), "-1");
        assert_eq!(sum(&[d("-0")]).unwrap().to_string(), "0");
        assert_eq!(sum(&[]).unwrap().to_string(), "0");
    }
}
