//! Decimals in the journal and in plan documents.
//!
//! [`Dec`] wraps a `rust_decimal::Decimal` with two fixed forms:
//! - **Journal**: normalized (no trailing zeros), then sign, mantissa and
//!   scale, so equal values always have equal bytes and hashes (`0.10` and
//!   `0.1` are one price). Decoding refuses any other form.
//! - **Documents** (TOML, JSON): written as a string (`"0.10"`), or as an
//!   integer. A fractional number is refused, as for transaction amounts: the
//!   TOML and JSON readers hand it over as a binary float, and a float cannot
//!   say which literal was written (`1.00000000000000001` arrives as `1`), so
//!   reading it could round a price silently.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The largest mantissa a `Decimal` holds: 2^96 - 1.
const MANTISSA_MAX: u128 = (1u128 << 96) - 1;

/// A decimal with a canonical journal form and a lossless document form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dec(pub Decimal);

impl Dec {
    pub const ZERO: Dec = Dec(Decimal::ZERO);

    pub fn value(self) -> Decimal {
        self.0
    }
}

impl From<Decimal> for Dec {
    fn from(value: Decimal) -> Self {
        Dec(value)
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Dec {
    type Err = rust_decimal::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Decimal::from_str_exact(text.trim()).map(Dec)
    }
}

impl Encode for Dec {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        let value = self.0.normalize();
        let negative = value.is_sign_negative() && !value.is_zero();
        negative.encode(encoder)?;
        value.mantissa().unsigned_abs().encode(encoder)?;
        (value.scale() as u8).encode(encoder)
    }
}

impl<Context> Decode<Context> for Dec {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let negative = bool::decode(decoder)?;
        let mantissa = u128::decode(decoder)?;
        let scale = u8::decode(decoder)?;
        let canonical = mantissa <= MANTISSA_MAX
            && scale <= 28
            && (mantissa % 10 != 0 || scale == 0)
            && !(negative && mantissa == 0);
        if !canonical {
            return Err(DecodeError::OtherString(format!(
                "decimal (negative {negative}, mantissa {mantissa}, scale {scale}) is not in canonical form"
            )));
        }
        let signed = if negative {
            -(mantissa as i128)
        } else {
            mantissa as i128
        };
        Ok(Dec(Decimal::from_i128_with_scale(signed, u32::from(scale))))
    }
}

bincode::impl_borrow_decode!(Dec);

impl Serialize for Dec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DecVisitor)
    }
}

struct DecVisitor;

impl serde::de::Visitor<'_> for DecVisitor {
    type Value = Dec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal, best written as a string such as \"0.10\"")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Dec, E> {
        Dec::from_str(text).map_err(|e| E::custom(format!("{text:?} is not a decimal: {e}")))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Dec, E> {
        Ok(Dec(Decimal::from(value)))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Dec, E> {
        Ok(Dec(Decimal::from(value)))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Dec, E> {
        Err(E::custom(format!(
            "{value} is not a JSON or TOML number Tally reads (a binary float may have \
             rounded it); write the decimal as a string, e.g. \"{value}\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(value: Dec) -> Vec<u8> {
        bincode::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    #[test]
    fn equal_values_have_equal_bytes() {
        let a = Dec(Decimal::from_str("0.10").unwrap());
        let b = Dec(Decimal::from_str("0.1").unwrap());
        assert_eq!(encode(a), encode(b));
        assert_ne!(encode(a), encode(Dec(Decimal::from_str("0.01").unwrap())));
    }

    #[test]
    fn non_canonical_bytes_are_refused() {
        // 10 at scale 1 (1.0) is not normalized.
        let bytes = bincode::encode_to_vec((false, 10u128, 1u8), bincode::config::standard())
            .expect("encode");
        let decoded: Result<(Dec, usize), _> =
            bincode::decode_from_slice(&bytes, bincode::config::standard());
        assert!(decoded.is_err());
    }

    #[test]
    fn documents_read_strings_and_integers_exactly_and_refuse_floats() {
        let read = |json: &str| serde_json::from_str::<Dec>(json).map(|d| d.to_string());
        assert_eq!(read("\"0.10\"").unwrap(), "0.10");
        assert_eq!(read("7").unwrap(), "7");
        assert_eq!(read("-7").unwrap(), "-7");
        // A float cannot tell 1.00000000000000001 from 1: refused, never rounded.
        for float in [
            "0.1",
            "6.5",
            "1.00000000000000001",
            "1e30",
            "100000000000000000000",
        ] {
            let error = read(float).unwrap_err().to_string();
            assert!(
                error.contains("write the decimal as a string"),
                "{float}: {error}"
            );
        }
        assert!(read("\"ten\"").is_err());
        assert!(read("\"1e3\"").is_err());
    }

    proptest! {
        #[test]
        fn journal_form_round_trips(mantissa in any::<i64>(), scale in 0u32..=28) {
            let value = Dec(Decimal::new(mantissa, scale));
            let bytes = encode(value);
            let (decoded, _): (Dec, usize) =
                bincode::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            prop_assert_eq!(decoded.0, value.0);
            prop_assert_eq!(encode(decoded), bytes);
        }
    }
}
