//! Price plans, coupons and tax rules: the data rating reads.
//!
//! A [`PlanSpec`] is recorded in the journal as a plan version
//! (`EntryBody::PlanPublished`) and never changes afterwards; a new price is
//! a new version. Plans are written as TOML or JSON documents whose shape is
//! these types' serde form (`docs/rating.md`); prices are decimals written as
//! strings. Validation is a pure function: every error names the field path.

use crate::calendar::BillingInterval;
use crate::decimal::Dec;
use crate::meter::{is_meter_code, is_property_name, quoted};
use bincode::{Decode, Encode};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest plan, charge, coupon or tax code, in bytes.
pub const CODE_BYTES_MAX: usize = 64;
/// The longest name or description, in bytes.
pub const TEXT_BYTES_MAX: usize = 256;
/// The most charges one plan may have.
pub const CHARGES_MAX: usize = 64;
/// The most tiers one charge may have.
pub const TIERS_MAX: usize = 32;
/// The most decimal places a price, rate or quantity bound may carry.
pub const PRICE_SCALE_MAX: u32 = 12;
/// The largest price, rate or quantity bound in a plan: 10^15.
pub const PRICE_MAX: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// How an amount is rounded to its currency's scale.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Nearest; a half goes away from zero (2.345 → 2.35). The common
    /// commercial rule.
    #[default]
    HalfUp,
    /// Nearest; a half goes to the even neighbour (2.345 → 2.34).
    HalfEven,
    /// Away from zero (2.341 → 2.35).
    Up,
    /// Toward zero (2.349 → 2.34).
    Down,
}

impl RoundingMode {
    pub const ALL: [RoundingMode; 4] = [
        RoundingMode::HalfUp,
        RoundingMode::HalfEven,
        RoundingMode::Up,
        RoundingMode::Down,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RoundingMode::HalfUp => "half_up",
            RoundingMode::HalfEven => "half_even",
            RoundingMode::Up => "up",
            RoundingMode::Down => "down",
        }
    }

    pub fn from_name(name: &str) -> Option<RoundingMode> {
        RoundingMode::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn strategy(self) -> RoundingStrategy {
        match self {
            RoundingMode::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            RoundingMode::HalfEven => RoundingStrategy::MidpointNearestEven,
            RoundingMode::Up => RoundingStrategy::AwayFromZero,
            RoundingMode::Down => RoundingStrategy::ToZero,
        }
    }

    /// `value` rounded to `scale` decimal places, with exactly that scale
    /// (so `35` at scale 2 prints as `35.00`).
    pub fn round(self, value: Decimal, scale: u8) -> Decimal {
        let mut rounded = value.round_dp_with_strategy(u32::from(scale), self.strategy());
        rounded.rescale(u32::from(scale));
        rounded
    }
}

/// A versioned price plan.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// The plan's code; every version of a plan shares it.
    pub code: String,
    #[serde(default)]
    pub name: String,
    /// The currency every charge is priced in.
    pub currency: String,
    pub interval: BillingInterval,
    pub charges: Vec<Charge>,
    /// If the period's charges (before discount) come to less, a true-up
    /// line makes up the difference (prorated like flat fees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_commitment: Option<Dec>,
    /// How each line is rounded to the currency's scale, once.
    #[serde(default)]
    pub rounding: RoundingMode,
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Charge {
    /// Unique within the plan; names the invoice line.
    pub code: String,
    #[serde(default)]
    pub description: String,
    /// The meter whose aggregate is the quantity; none for a flat fee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// Only this group of the meter's group-by (e.g. `region = "eu"`);
    /// empty for all of the customer's usage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group: BTreeMap<String, String>,
    /// The free allowance: units taken off the quantity before pricing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub free_units: Dec,
    pub pricing: Pricing,
}

fn is_zero(value: &Dec) -> bool {
    value.0.is_zero()
}

/// When a flat fee is billed for its period.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FlatTiming {
    /// At the start of the period it pays for.
    #[default]
    InAdvance,
    /// At the end of the period it paid for.
    InArrears,
}

/// How a charge turns its quantity into money.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pricing {
    /// A recurring fee, prorated by day for a partial period.
    Flat {
        amount: Dec,
        #[serde(default)]
        timing: FlatTiming,
    },
    /// The same price for every unit.
    PerUnit { unit_price: Dec },
    /// Each tier prices the units that fall in it.
    Graduated { tiers: Vec<Tier> },
    /// The tier the whole quantity falls in prices every unit.
    Volume { tiers: Vec<Tier> },
    /// A price per started block of `size` units.
    Package { size: Dec, price: Dec },
    /// A share of each transaction's amount (the meter's event values), plus
    /// a fixed fee per transaction, each transaction's fee kept between
    /// `min_per_transaction` and `max_per_transaction`.
    Percentage {
        /// Percent: `2.9` is 2.9 %.
        rate: Dec,
        #[serde(default, skip_serializing_if = "is_zero")]
        fixed_fee: Dec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_per_transaction: Option<Dec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_per_transaction: Option<Dec>,
    },
}

impl Pricing {
    pub fn model(&self) -> &'static str {
        match self {
            Pricing::Flat { .. } => "flat",
            Pricing::PerUnit { .. } => "per_unit",
            Pricing::Graduated { .. } => "graduated",
            Pricing::Volume { .. } => "volume",
            Pricing::Package { .. } => "package",
            Pricing::Percentage { .. } => "percentage",
        }
    }
}

/// A tier: the units above the previous tier's `up_to`, through its own
/// (none: without end).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<Dec>,
    #[serde(default)]
    pub unit_price: Dec,
    /// Charged once when any unit falls in the tier.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flat_fee: Dec,
}

/// A discount granted to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coupon {
    pub code: String,
    pub discount: CouponDiscount,
    pub duration: CouponDuration,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CouponDiscount {
    /// Percent off the period's charges: `10` is 10 %.
    Percentage { percent: Dec },
    /// An amount off in the plan's currency. A `once` coupon's unused part
    /// carries over to the next periods until spent.
    Fixed { amount: Dec },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CouponDuration {
    Once,
    Periods { count: u32 },
    Forever,
}

/// Whether prices include the tax.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaxMode {
    /// Tax is added on top of the lines.
    #[default]
    Exclusive,
    /// The lines' amounts already include the tax.
    Inclusive,
}

/// Where tax is rounded to the currency's scale.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaxRounding {
    /// Each line's tax is rounded, and the invoice's is their sum.
    #[default]
    PerLine,
    /// Lines carry unrounded tax; the invoice's total tax is rounded once.
    PerInvoice,
}

/// A tax rate in one jurisdiction: a country, or a region of one.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxRule {
    pub code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
    /// A subdivision, e.g. `CA-QC`; none for the whole country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Percent: `19` is 19 %.
    pub rate: Dec,
    #[serde(default)]
    pub mode: TaxMode,
    #[serde(default)]
    pub rounding: RoundingMode,
    #[serde(default)]
    pub granularity: TaxRounding,
}

impl TaxRule {
    /// Whether the rule applies in `country` (and `region`): a country-wide
    /// rule everywhere in the country, a regional one only in its region.
    pub fn applies_in(&self, country: &str, region: Option<&str>) -> bool {
        self.country == country
            && match &self.region {
                None => true,
                Some(own) => Some(own.as_str()) == region,
            }
    }
}

/// The rules that apply in a jurisdiction: the country's and the region's
/// (both, stacked, like a federal and a provincial sales tax).
pub fn rules_for<'a>(
    rules: &'a [TaxRule],
    country: &str,
    region: Option<&str>,
) -> Vec<&'a TaxRule> {
    rules
        .iter()
        .filter(|rule| rule.applies_in(country, region))
        .collect()
}

/// Why a plan, coupon or tax rule is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanRejection {
    FieldMissing,
    FieldInvalid,
    FieldTooLong,
    Duplicate,
    /// A field is set that the charge's model does not use, or a model's
    /// required field is missing.
    ModelMismatch,
    /// Tiers are not in increasing order, or only the last is unbounded.
    TiersOutOfOrder,
}

/// An error in a plan, coupon or tax rule: the field path, the reason, a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanError {
    pub field: String,
    pub reason: PlanRejection,
    pub message: String,
}

fn error(field: impl Into<String>, reason: PlanRejection, message: impl Into<String>) -> PlanError {
    PlanError {
        field: field.into(),
        reason,
        message: message.into(),
    }
}

fn code(field: &str, value: &str) -> Result<(), PlanError> {
    use PlanRejection::*;
    if value.is_empty() {
        return Err(error(field, FieldMissing, format!("{field} is required")));
    }
    if value.len() > CODE_BYTES_MAX {
        return Err(error(
            field,
            FieldTooLong,
            format!(
                "{field} is {} bytes; the limit is {CODE_BYTES_MAX}",
                value.len()
            ),
        ));
    }
    if !is_meter_code(value) {
        return Err(error(
            field,
            FieldInvalid,
            format!("{field} {} is not [a-z0-9_]", quoted(value)),
        ));
    }
    Ok(())
}

fn text(field: &str, value: &str) -> Result<(), PlanError> {
    if value.len() > TEXT_BYTES_MAX {
        return Err(error(
            field,
            PlanRejection::FieldTooLong,
            format!(
                "{field} is {} bytes; the limit is {TEXT_BYTES_MAX}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// A price, rate or bound: not negative, at most [`PRICE_MAX`], at most
/// [`PRICE_SCALE_MAX`] decimals.
pub fn price(field: &str, value: Dec) -> Result<(), PlanError> {
    use PlanRejection::*;
    let value = value.0.normalize();
    if value.is_sign_negative() && !value.is_zero() {
        return Err(error(field, FieldInvalid, format!("{value} is negative")));
    }
    if value > PRICE_MAX {
        return Err(error(
            field,
            FieldInvalid,
            format!("{value} exceeds the limit of {PRICE_MAX}"),
        ));
    }
    if value.scale() > PRICE_SCALE_MAX {
        return Err(error(
            field,
            FieldInvalid,
            format!("{value} has more than {PRICE_SCALE_MAX} decimal places"),
        ));
    }
    Ok(())
}

fn positive(field: &str, value: Dec) -> Result<(), PlanError> {
    price(field, value)?;
    if value.0.is_zero() {
        return Err(error(
            field,
            PlanRejection::FieldInvalid,
            "must be more than zero",
        ));
    }
    Ok(())
}

fn percent(field: &str, value: Dec) -> Result<(), PlanError> {
    price(field, value)?;
    if value.0 > Decimal::ONE_HUNDRED {
        return Err(error(
            field,
            PlanRejection::FieldInvalid,
            format!("{} percent exceeds 100", value.0),
        ));
    }
    Ok(())
}

impl PlanSpec {
    /// Checks the plan; the first error found, in field order. Whether the
    /// currency and meters exist is the server's check, not the document's.
    pub fn validate(&self) -> Result<(), PlanError> {
        use PlanRejection::*;
        code("code", &self.code)?;
        text("name", &self.name)?;
        if self.currency.is_empty() {
            return Err(error("currency", FieldMissing, "currency is required"));
        }
        self.interval
            .anchor
            .ymd()
            .ok_or_else(|| error("interval.anchor", FieldInvalid, "anchor day out of range"))?;
        if self.charges.is_empty() {
            return Err(error(
                "charges",
                FieldMissing,
                "a plan has at least one charge",
            ));
        }
        if self.charges.len() > CHARGES_MAX {
            return Err(error(
                "charges",
                FieldTooLong,
                format!("{} charges; the limit is {CHARGES_MAX}", self.charges.len()),
            ));
        }
        let mut codes = BTreeSet::new();
        for (index, charge) in self.charges.iter().enumerate() {
            let at = format!("charges[{index}]");
            charge.validate(&at)?;
            if !codes.insert(charge.code.as_str()) {
                return Err(error(
                    format!("{at}.code"),
                    Duplicate,
                    format!("charge code {} appears twice", quoted(&charge.code)),
                ));
            }
        }
        if let Some(minimum) = self.minimum_commitment {
            price("minimum_commitment", minimum)?;
        }
        Ok(())
    }
}

impl Charge {
    fn validate(&self, at: &str) -> Result<(), PlanError> {
        use PlanRejection::*;
        code(&format!("{at}.code"), &self.code)?;
        text(&format!("{at}.description"), &self.description)?;
        let flat = matches!(self.pricing, Pricing::Flat { .. });
        match (&self.meter, flat) {
            (Some(_), true) => {
                return Err(error(
                    format!("{at}.meter"),
                    ModelMismatch,
                    "a flat fee reads no meter",
                ))
            }
            (None, false) => {
                return Err(error(
                    format!("{at}.meter"),
                    FieldMissing,
                    format!("a {} charge names its meter", self.pricing.model()),
                ))
            }
            (Some(meter), false) => code(&format!("{at}.meter"), meter)?,
            (None, true) => {}
        }
        if flat && !self.group.is_empty() {
            return Err(error(
                format!("{at}.group"),
                ModelMismatch,
                "a flat fee reads no group",
            ));
        }
        for (name, value) in &self.group {
            if !is_property_name(name) {
                return Err(error(
                    format!("{at}.group"),
                    FieldInvalid,
                    format!("{} is not a property name", quoted(name)),
                ));
            }
            text(&format!("{at}.group.{name}"), value)?;
        }
        price(&format!("{at}.free_units"), self.free_units)?;
        let percentage = matches!(self.pricing, Pricing::Percentage { .. });
        if (flat || percentage) && !self.free_units.0.is_zero() {
            return Err(error(
                format!("{at}.free_units"),
                ModelMismatch,
                format!("a {} charge has no free units", self.pricing.model()),
            ));
        }
        let at = format!("{at}.pricing");
        match &self.pricing {
            Pricing::Flat { amount, .. } => price(&format!("{at}.amount"), *amount),
            Pricing::PerUnit { unit_price } => price(&format!("{at}.unit_price"), *unit_price),
            Pricing::Graduated { tiers } | Pricing::Volume { tiers } => {
                validate_tiers(&format!("{at}.tiers"), tiers)
            }
            Pricing::Package {
                size,
                price: amount,
            } => {
                positive(&format!("{at}.size"), *size)?;
                price(&format!("{at}.price"), *amount)
            }
            Pricing::Percentage {
                rate,
                fixed_fee,
                min_per_transaction,
                max_per_transaction,
            } => {
                percent(&format!("{at}.rate"), *rate)?;
                price(&format!("{at}.fixed_fee"), *fixed_fee)?;
                if let Some(min) = min_per_transaction {
                    price(&format!("{at}.min_per_transaction"), *min)?;
                }
                if let Some(max) = max_per_transaction {
                    price(&format!("{at}.max_per_transaction"), *max)?;
                }
                match (min_per_transaction, max_per_transaction) {
                    (Some(min), Some(max)) if min.0 > max.0 => Err(error(
                        format!("{at}.max_per_transaction"),
                        FieldInvalid,
                        format!("maximum {} is below the minimum {}", max.0, min.0),
                    )),
                    _ => Ok(()),
                }
            }
        }
    }
}

fn validate_tiers(at: &str, tiers: &[Tier]) -> Result<(), PlanError> {
    use PlanRejection::*;
    if tiers.is_empty() {
        return Err(error(at, FieldMissing, "at least one tier is required"));
    }
    if tiers.len() > TIERS_MAX {
        return Err(error(
            at,
            FieldTooLong,
            format!("{} tiers; the limit is {TIERS_MAX}", tiers.len()),
        ));
    }
    let mut previous = Decimal::ZERO;
    for (index, tier) in tiers.iter().enumerate() {
        let field = format!("{at}[{index}]");
        price(&format!("{field}.unit_price"), tier.unit_price)?;
        price(&format!("{field}.flat_fee"), tier.flat_fee)?;
        let last = index + 1 == tiers.len();
        match (tier.up_to, last) {
            (None, true) => {}
            (None, false) => {
                return Err(error(
                    format!("{field}.up_to"),
                    TiersOutOfOrder,
                    "only the last tier may be without end",
                ))
            }
            (Some(_), true) => {
                return Err(error(
                    format!("{field}.up_to"),
                    TiersOutOfOrder,
                    "the last tier is without end (leave up_to unset)",
                ))
            }
            (Some(up_to), false) => {
                price(&format!("{field}.up_to"), up_to)?;
                if up_to.0 <= previous {
                    return Err(error(
                        format!("{field}.up_to"),
                        TiersOutOfOrder,
                        format!(
                            "up_to {} is not above the previous tier's {previous}",
                            up_to.0
                        ),
                    ));
                }
                previous = up_to.0;
            }
        }
    }
    Ok(())
}

impl Coupon {
    pub fn validate(&self, at: &str) -> Result<(), PlanError> {
        code(&format!("{at}.code"), &self.code)?;
        match self.discount {
            CouponDiscount::Percentage { percent: value } => {
                percent(&format!("{at}.discount.percent"), value)
            }
            CouponDiscount::Fixed { amount } => price(&format!("{at}.discount.amount"), amount),
        }?;
        if let CouponDuration::Periods { count: 0 } = self.duration {
            return Err(error(
                format!("{at}.duration.count"),
                PlanRejection::FieldInvalid,
                "a coupon lasts at least one period",
            ));
        }
        Ok(())
    }
}

impl TaxRule {
    pub fn validate(&self, at: &str) -> Result<(), PlanError> {
        use PlanRejection::*;
        code(&format!("{at}.code"), &self.code)?;
        let country_ok =
            self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase());
        if !country_ok {
            return Err(error(
                format!("{at}.country"),
                FieldInvalid,
                format!("{} is not a two-letter country code", quoted(&self.country)),
            ));
        }
        if let Some(region) = &self.region {
            if region.is_empty() {
                return Err(error(
                    format!("{at}.region"),
                    FieldMissing,
                    "region is empty",
                ));
            }
            text(&format!("{at}.region"), region)?;
        }
        percent(&format!("{at}.rate"), self.rate)
    }
}

/// Checks a set of tax rules applied together: each valid, codes unique,
/// and all inclusive or all exclusive (a price cannot both include a tax
/// and have another added on top in one Tally invoice).
pub fn validate_tax_rules(rules: &[&TaxRule], at: &str) -> Result<(), PlanError> {
    let mut codes = BTreeSet::new();
    for (index, rule) in rules.iter().enumerate() {
        let field = format!("{at}[{index}]");
        rule.validate(&field)?;
        if !codes.insert(rule.code.as_str()) {
            return Err(error(
                format!("{field}.code"),
                PlanRejection::Duplicate,
                format!("tax code {} appears twice", quoted(&rule.code)),
            ));
        }
        if rule.mode != rules[0].mode {
            return Err(error(
                format!("{field}.mode"),
                PlanRejection::FieldInvalid,
                "taxes applied together are all inclusive or all exclusive",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
code = "pro"
name = "Pro"
currency = "USD"
minimum_commitment = "100"
interval = { unit = "monthly", anchor = "2026-01-01" }

[[charges]]
code = "base"
pricing = { model = "flat", amount = "20", timing = "in_advance" }

[[charges]]
code = "api_calls"
meter = "api_calls"
group = { region = "eu" }
free_units = 1000
pricing = { model = "graduated", tiers = [
  { up_to = 1000, unit_price = "0.10" },
  { up_to = 10000, unit_price = "0.05" },
  { unit_price = "0.01" },
] }
"#;

    fn plan() -> PlanSpec {
        toml::from_str(PLAN).unwrap()
    }

    #[test]
    fn a_toml_plan_reads_and_validates() {
        let plan = plan();
        plan.validate().unwrap();
        assert_eq!(plan.charges[1].free_units.0, Decimal::from(1000));
        let Pricing::Graduated { tiers } = &plan.charges[1].pricing else {
            panic!("graduated expected");
        };
        assert_eq!(tiers[0].unit_price.to_string(), "0.10");
        assert_eq!(tiers[2].up_to, None);
        // The JSON form round-trips, and so does the journal form.
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<PlanSpec>(&json).unwrap(), plan);
        let bytes = bincode::encode_to_vec(&plan, bincode::config::standard()).unwrap();
        let (back, _): (PlanSpec, usize) =
            bincode::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let typo = PLAN.replace("free_units = 1000", "free_unit = 1000");
        assert!(toml::from_str::<PlanSpec>(&typo).is_err());
    }

    #[test]
    fn errors_name_their_field() {
        let mut plan = plan();
        let Pricing::Graduated { tiers } = &mut plan.charges[1].pricing else {
            unreachable!()
        };
        tiers[1].up_to = Some(Dec(Decimal::from(500)));
        let e = plan.validate().unwrap_err();
        assert_eq!(e.field, "charges[1].pricing.tiers[1].up_to");
        assert_eq!(e.reason, PlanRejection::TiersOutOfOrder);

        let mut plan = self::plan();
        plan.charges[0].meter = Some("api_calls".into());
        assert_eq!(plan.validate().unwrap_err().field, "charges[0].meter");

        let mut plan = self::plan();
        plan.charges[1].code = "base".into();
        let e = plan.validate().unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason),
            ("charges[1].code", PlanRejection::Duplicate)
        );

        let mut plan = self::plan();
        plan.minimum_commitment = Some(Dec(Decimal::NEGATIVE_ONE));
        assert_eq!(plan.validate().unwrap_err().field, "minimum_commitment");
    }

    #[test]
    fn tax_rules_apply_by_country_and_region() {
        let rule = |code: &str, region: Option<&str>| TaxRule {
            code: code.into(),
            country: "CA".into(),
            region: region.map(str::to_string),
            rate: Dec(Decimal::from(5)),
            mode: TaxMode::Exclusive,
            rounding: RoundingMode::HalfUp,
            granularity: TaxRounding::PerLine,
        };
        let rules = [rule("gst", None), rule("qst", Some("CA-QC"))];
        let codes = |region| {
            rules_for(&rules, "CA", region)
                .iter()
                .map(|r| r.code.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(Some("CA-QC")), ["gst", "qst"]);
        assert_eq!(codes(Some("CA-ON")), ["gst"]);
        assert!(rules_for(&rules, "US", None).is_empty());
    }

    /// Replaces the leaf at `target` (in depth-first order) with `value`.
    fn mutate(doc: &mut serde_json::Value, target: &mut usize, value: &serde_json::Value) {
        match doc {
            serde_json::Value::Object(map) => {
                for (_, child) in map.iter_mut() {
                    mutate(child, target, value);
                }
            }
            serde_json::Value::Array(items) => {
                for child in items.iter_mut() {
                    mutate(child, target, value);
                }
            }
            leaf => {
                if *target == 0 {
                    *leaf = value.clone();
                }
                *target = target.wrapping_sub(1);
            }
        }
    }

    fn json_leaf() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
            "-?[0-9]{0,30}(\\.[0-9]{0,30})?".prop_map(serde_json::Value::from),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}".prop_map(serde_json::Value::from),
            Just(serde_json::json!({"model": "volume", "tiers": []})),
        ]
    }

    proptest::proptest! {
        /// A plan document with any of its fields replaced by anything is
        /// read or refused without panicking; whatever validates survives
        /// the JSON and journal forms unchanged.
        #[test]
        fn any_mutated_document_is_refused_or_round_trips(
            edits in proptest::collection::vec((0usize..40, json_leaf()), 1..4),
        ) {
            let mut doc = serde_json::to_value(plan()).unwrap();
            for (target, value) in &edits {
                let mut target = *target;
                mutate(&mut doc, &mut target, value);
            }
            let Ok(spec) = serde_json::from_value::<PlanSpec>(doc) else {
                return Ok(());
            };
            if spec.validate().is_err() {
                return Ok(());
            }
            let json = serde_json::to_string(&spec).unwrap();
            proptest::prop_assert_eq!(&serde_json::from_str::<PlanSpec>(&json).unwrap(), &spec);
            let bytes = bincode::encode_to_vec(&spec, bincode::config::standard()).unwrap();
            let (back, _): (PlanSpec, usize) =
                bincode::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            proptest::prop_assert_eq!(back, spec);
        }

        #[test]
        fn any_text_is_a_day_or_refused(text in "\\PC{0,12}") {
            if let Ok(day) = text.parse::<crate::calendar::Day>() {
                proptest::prop_assert_eq!(day.to_string(), text);
            }
        }
    }

    #[test]
    fn price_limit_is_ten_to_the_fifteenth() {
        assert_eq!(PRICE_MAX, Decimal::from(1_000_000_000_000_000u64));
    }
}
