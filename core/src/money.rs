//! Money in the journal: amounts as integer minor units at their currency's scale.
//!
//! The public money type is `rust_decimal::Decimal`. Inside the journal an amount is
//! stored as an unsigned integer count of minor units (`amount_minor`) at the scale
//! of its currency, so that equal amounts always have equal bytes (and hashes):
//! `12.5 USD` and `12.50 USD` are both `1250`.
//!
//! Limits: a scale is at most [`SCALE_MAX`]; an amount or any balance total is at
//! most [`AMOUNT_MINOR_MAX`] minor units, the largest mantissa a `Decimal` holds, so
//! every figure the ledger reports converts back to a `Decimal` exactly.

use rust_decimal::Decimal;

/// The largest number of decimal places a currency may have (crypto needs 18).
pub const SCALE_MAX: u8 = 18;

/// The largest amount, and the largest balance total, in minor units: 2^96 - 1,
/// the largest mantissa of a `Decimal`.
pub const AMOUNT_MINOR_MAX: u128 = (1u128 << 96) - 1;

/// Why a decimal could not become an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be positive")]
    NotPositive,
    #[error("amount is negative")]
    Negative,
    #[error("amount has more decimal places than the currency's scale {scale}")]
    ScaleExceeded { scale: u8 },
    #[error("amount exceeds the maximum of {AMOUNT_MINOR_MAX} minor units")]
    Overflow,
}

/// Converts a non-negative decimal into minor units at `scale`, exactly.
///
/// Trailing zeros beyond the scale are fine (`1.500` at scale 2 is 150); any
/// non-zero digit beyond it is an error, never a rounding.
pub fn to_minor(value: Decimal, scale: u8) -> Result<u128, AmountError> {
    debug_assert!(scale <= SCALE_MAX);
    if value.is_sign_negative() && !value.is_zero() {
        return Err(AmountError::Negative);
    }
    let normalized = value.normalize();
    let value_scale = normalized.scale();
    let mantissa = normalized.mantissa().unsigned_abs();
    if value_scale > u32::from(scale) {
        return Err(AmountError::ScaleExceeded { scale });
    }
    let factor = 10u128.pow(u32::from(scale) - value_scale);
    let minor = mantissa.checked_mul(factor).ok_or(AmountError::Overflow)?;
    if minor > AMOUNT_MINOR_MAX {
        return Err(AmountError::Overflow);
    }
    Ok(minor)
}

/// Converts a strictly positive decimal into minor units (a posting amount).
pub fn to_minor_positive(value: Decimal, scale: u8) -> Result<u128, AmountError> {
    if value.is_zero() || value.is_sign_negative() {
        return Err(AmountError::NotPositive);
    }
    to_minor(value, scale)
}

/// Minor units back to a decimal with exactly `scale` places.
///
/// Infallible within the ledger's limits: every stored amount and total is at
/// most [`AMOUNT_MINOR_MAX`], which a `Decimal` holds.
pub fn from_minor(minor: u128, scale: u8) -> Decimal {
    debug_assert!(
        minor <= AMOUNT_MINOR_MAX,
        "amount beyond the ledger's limit"
    );
    Decimal::from_i128_with_scale(minor as i128, u32::from(scale))
}

/// Formats `minor` units at `scale` exactly, for any `i128` (sums of many
/// balances may exceed what a `Decimal` holds; formatting never fails or
/// rounds): `format_minor(-1050, 2)` is `"-10.50"`.
pub fn format_minor(minor: i128, scale: u8) -> String {
    let digits = minor.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let sign = if minor < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// Why a decimal string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a plain decimal (exponent, spaces, '+', letters, ...).
    #[error("{0}")]
    Malformed(String),
    /// A plain decimal whose integer part is beyond what a `Decimal` holds.
    #[error("amount {0:?} exceeds the largest representable amount")]
    TooLarge(String),
    /// A plain decimal with more significant digits than a `Decimal` holds
    /// (28): it cannot be represented without rounding.
    #[error("amount {0:?} has more digits than can be represented exactly")]
    TooPrecise(String),
}

/// Parses a decimal string strictly: no exponent, no spaces, no '+', and never
/// rounded: a value a `Decimal` cannot hold exactly is an error.
pub fn parse_decimal(text: &str) -> Result<Decimal, ParseError> {
    let malformed = |why: String| Err(ParseError::Malformed(why));
    if text.is_empty() {
        return malformed("empty amount".to_string());
    }
    if text.len() > 64 {
        return malformed("amount text longer than 64 characters".to_string());
    }
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut dots = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => {}
            '.' => dots += 1,
            _ => return malformed(format!("invalid character {c:?} in amount {text:?}")),
        }
    }
    if dots > 1 || body.starts_with('.') || body.ends_with('.') || body.is_empty() {
        return malformed(format!("malformed amount {text:?}"));
    }
    Decimal::from_str_exact(text).map_err(|_| {
        let integer_digits = body
            .split('.')
            .next()
            .unwrap_or("")
            .trim_start_matches('0')
            .len();
        if integer_digits > 28
            || Decimal::from_str_exact(body.split('.').next().unwrap_or("")).is_err()
        {
            ParseError::TooLarge(text.to_string())
        } else {
            ParseError::TooPrecise(text.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn equal_amounts_have_equal_minor_units() {
        // Goal: 12.5, 12.50 and 12.500 USD are one amount, stored once.
        assert_eq!(to_minor(d("12.5"), 2), Ok(1250));
        assert_eq!(to_minor(d("12.50"), 2), Ok(1250));
        assert_eq!(to_minor(d("12.500"), 2), Ok(1250));
        assert_eq!(to_minor(d("7"), 0), Ok(7));
    }

    #[test]
    fn extra_precision_is_rejected_not_rounded() {
        // Goal: no silent rounding; 0.001 USD is an error.
        assert_eq!(
            to_minor(d("0.001"), 2),
            Err(AmountError::ScaleExceeded { scale: 2 })
        );
        assert_eq!(
            to_minor(d("1.5"), 0),
            Err(AmountError::ScaleExceeded { scale: 0 })
        );
    }

    #[test]
    fn sign_and_zero_rules() {
        // Goal: postings are strictly positive; zero and negatives are named errors.
        assert_eq!(to_minor_positive(d("0"), 2), Err(AmountError::NotPositive));
        assert_eq!(to_minor_positive(d("-1"), 2), Err(AmountError::NotPositive));
        assert_eq!(to_minor(d("-1"), 2), Err(AmountError::Negative));
        assert_eq!(to_minor(d("0"), 2), Ok(0));
    }

    #[test]
    fn overflow_is_an_error() {
        // Goal: an amount whose minor units exceed 2^96-1 is refused, never wrapped.
        let max = Decimal::MAX; // 79228162514264337593543950335
        assert_eq!(to_minor(max, 0), Ok(AMOUNT_MINOR_MAX));
        assert_eq!(to_minor(max, 1), Err(AmountError::Overflow));
        assert_eq!(to_minor(d("1"), 18), Ok(10u128.pow(18)));
    }

    #[test]
    fn parse_rejects_loose_forms() {
        // Goal: only plain decimal strings are amounts.
        for bad in [
            "", "1e5", " 1", "+1", "1.", ".5", "1..2", "NaN", "inf", "1,5", "0x10",
        ] {
            assert!(parse_decimal(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_decimal("-0.50"), Ok(d("-0.50")));
        assert_eq!(parse_decimal("123.456"), Ok(d("123.456")));
    }

    #[test]
    fn format_is_exact_beyond_decimal() {
        // Goal: any i128 of minor units formats exactly, past Decimal's range too.
        assert_eq!(format_minor(-1050, 2), "-10.50");
        assert_eq!(format_minor(5, 2), "0.05");
        assert_eq!(format_minor(0, 2), "0.00");
        assert_eq!(format_minor(7, 0), "7");
        assert_eq!(format_minor(1, 18), "0.000000000000000001");
        let twice_max = 2 * AMOUNT_MINOR_MAX as i128;
        assert_eq!(format_minor(twice_max, 0), "158456325028528675187087900670");
        assert_eq!(format_minor(i128::MIN, 0), i128::MIN.to_string());
    }

    #[test]
    fn parse_never_rounds() {
        // Goal: a value a Decimal cannot hold exactly is refused with its reason.
        let over = "79228162514264337593543950336"; // 2^96
        assert_eq!(parse_decimal(over), Err(ParseError::TooLarge(over.into())));
        let long = "0.11111111111111111111111111111"; // 29 decimals
        assert_eq!(
            parse_decimal(long),
            Err(ParseError::TooPrecise(long.into()))
        );
        assert_eq!(
            parse_decimal("79228162514264337593543950335"),
            Ok(Decimal::MAX)
        );
    }

    proptest! {
        #[test]
        fn minor_round_trips(minor in 0u128..=AMOUNT_MINOR_MAX, scale in 0u8..=SCALE_MAX) {
            // Goal: every representable amount survives decimal -> minor -> decimal,
            // and formats as the Decimal does.
            let value = from_minor(minor, scale);
            prop_assert_eq!(to_minor(value, scale), Ok(minor));
            prop_assert_eq!(format_minor(minor as i128, scale), value.to_string());
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,50}") {
            // Goal: arbitrary text yields a value or an error, never a panic.
            let _ = parse_decimal(&text);
        }
    }
}
