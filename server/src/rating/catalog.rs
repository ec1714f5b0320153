//! Plan versions as the journal records them, and the way in.
//!
//! - [`PlanCatalog`]: the fold of `plan_published` entries, one type for the
//!   writer's state and for the read model (like `metering::catalog`), so that
//!   both answer "which version of which plan" from the same fold.
//! - [`parse_plan`]: the caller's half of publishing (and of a draft's check):
//!   the JSON document read strictly, validated, and put in its recorded form.
//!   It needs no ledger state, so it runs on the caller's task, not in the
//!   writer.
//! - [`check_references`]: what depends on the ledger's state (the currency,
//!   the meters and their groups), shared by the writer, a draft's check and
//!   the replay, so that the three never disagree.
//! - [`publish_plan`]: the writer's half: a retry of the current version
//!   records nothing, a new version may not change the currency.

use super::plan_error;
use crate::error::LedgerError;
use crate::ledger::execute::Context;
use crate::ledger::state::{Journaled, LedgerState};
use crate::metering::catalog::Catalog;
use std::collections::BTreeMap;
use tally_core::entry::{Entry, EntryBody, PlanPublished, TimestampNs};
use tally_core::error_code::ErrorCode;
use tally_core::meter::{quoted, Aggregation};
use tally_core::plan::{PlanSpec, Pricing};

/// The longest plan document, in bytes. The largest valid plan (64 charges
/// of 32 tiers with the longest texts) takes about a third of this as JSON;
/// the bound keeps a hostile document from costing more than a plan can.
pub const PLAN_JSON_BYTES_MAX: usize = 1024 * 1024;

/// One version of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanVersion {
    pub version: u32,
    /// As recorded: every decimal normalized.
    pub spec: PlanSpec,
    /// The `plan_published` entry.
    pub seq: u64,
    pub published_at: TimestampNs,
}

#[derive(Debug, Default, Clone)]
pub struct PlanCatalog {
    /// Every version of every plan, oldest first, by code.
    plans: BTreeMap<String, Vec<PlanVersion>>,
}

impl PlanCatalog {
    /// The current (latest) version of a plan.
    pub fn current(&self, code: &str) -> Option<&PlanVersion> {
        self.plans.get(code).and_then(|versions| versions.last())
    }

    /// Every version of a plan, oldest first.
    pub fn versions(&self, code: &str) -> &[PlanVersion] {
        self.plans.get(code).map(Vec::as_slice).unwrap_or_default()
    }

    /// Version `version` of a plan; 0 is the current one.
    pub fn version(&self, code: &str, version: u32) -> Option<&PlanVersion> {
        if version == 0 {
            return self.current(code);
        }
        // Versions count from 1 without gaps: version n is at index n - 1.
        let index = usize::try_from(version - 1).ok()?;
        self.versions(code).get(index)
    }

    /// The current version of every plan, in code order.
    pub fn plans(&self) -> impl Iterator<Item = &PlanVersion> {
        self.plans.values().filter_map(|versions| versions.last())
    }

    /// Folds a `plan_published` entry. `Err` names an entry that contradicts
    /// the catalog (a replayed journal not written by this ledger's rules):
    /// a version out of order, or a currency changed.
    pub fn apply(
        &mut self,
        seq: u64,
        recorded_at: TimestampNs,
        published: &PlanPublished,
    ) -> Result<(), String> {
        let spec = &published.spec;
        let versions = self.plans.entry(spec.code.clone()).or_default();
        let expected = versions.len() as u64 + 1;
        if u64::from(published.version) != expected {
            return Err(format!(
                "plan {:?} version {}, expected {expected}",
                spec.code, published.version
            ));
        }
        if let Some(first) = versions.first() {
            if first.spec.currency != spec.currency {
                return Err(format!(
                    "plan {:?} changes its currency from {} to {}",
                    spec.code, first.spec.currency, spec.currency
                ));
            }
        }
        versions.push(PlanVersion {
            version: published.version,
            spec: spec.clone(),
            seq,
            published_at: recorded_at,
        });
        Ok(())
    }
}

/// Reads a plan document (JSON) strictly, validates it and returns it in the
/// form it is recorded in. `field` names the request field holding the
/// document, for errors about the document as a whole (empty, too long, not
/// JSON); errors inside it name their path in the document
/// (`charges[1].pricing.tiers[0].up_to`).
pub fn parse_plan(json: &str, field: &str) -> Result<PlanSpec, LedgerError> {
    if json.trim().is_empty() {
        return Err(LedgerError::new(
            ErrorCode::FieldRequired,
            field,
            "the plan document is required",
        ));
    }
    if json.len() > PLAN_JSON_BYTES_MAX {
        return Err(LedgerError::new(
            ErrorCode::FieldTooLong,
            field,
            format!(
                "the plan document is {} bytes; the limit is {PLAN_JSON_BYTES_MAX}",
                json.len()
            ),
        ));
    }
    // serde also reads a struct from an array of its fields in order, where
    // unknown fields cannot be refused: a document is an object.
    if !json.trim_start().starts_with('{') {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            field,
            "the plan document is a JSON object",
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_str(json);
    let spec: PlanSpec = serde_path_to_error::deserialize(deserializer)
        .map_err(|error| json_error(&error, field))?;
    spec.validate().map_err(plan_error)?;
    canonical(spec)
}

/// A serde error at its path in the document. A document that is not JSON
/// at all (a syntax error, a truncation) is the request field's error. serde's
/// paths stop at an internally tagged enum (`charges[0].pricing`), and a
/// missing field is reported at its parent: the field's name is then taken
/// from the message.
fn json_error(error: &serde_path_to_error::Error<serde_json::Error>, field: &str) -> LedgerError {
    let message = error.inner().to_string();
    if !error.inner().is_data() {
        return LedgerError::new(ErrorCode::FieldInvalid, field, message);
    }
    let path = error.path().to_string();
    let parent = match path.as_str() {
        "." | "?" => "",
        path => path,
    };
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let at = if parent.is_empty() {
            missing.to_string()
        } else {
            format!("{parent}.{missing}")
        };
        return LedgerError::new(ErrorCode::FieldRequired, at, message);
    }
    let at = if parent.is_empty() { field } else { parent };
    LedgerError::new(ErrorCode::FieldInvalid, at, message)
}

/// The plan as the journal records it: every decimal normalized (`0.10` is
/// `0.1`), exactly what a replay decodes, so that the writer's state, the read
/// model and a restarted ledger hold the same bytes and answer the same JSON.
pub fn canonical(spec: PlanSpec) -> Result<PlanSpec, LedgerError> {
    let config = bincode::config::standard();
    let recoded = bincode::encode_to_vec(&spec, config)
        .ok()
        .and_then(|bytes| bincode::decode_from_slice::<PlanSpec, _>(&bytes, config).ok());
    recoded.map(|(spec, _)| spec).ok_or_else(|| {
        LedgerError::new(
            ErrorCode::Internal,
            "",
            "a plan did not survive its own encoding",
        )
    })
}

/// The checks that depend on the ledger's state: the currency exists; every
/// charge's meter exists, its group properties are among the meter's current
/// `group_by`, and a percentage charge reads a `sum` meter (its transactions
/// are the events' values).
pub fn check_references(
    spec: &PlanSpec,
    has_currency: impl Fn(&str) -> bool,
    meters: &Catalog,
) -> Result<(), LedgerError> {
    if !has_currency(&spec.currency) {
        return Err(LedgerError::new(
            ErrorCode::CurrencyUnknown,
            "currency",
            format!("no currency {}", quoted(&spec.currency)),
        ));
    }
    for (index, charge) in spec.charges.iter().enumerate() {
        let Some(code) = &charge.meter else { continue };
        let Some(meter) = meters.meter(code) else {
            return Err(LedgerError::new(
                ErrorCode::MeterNotFound,
                format!("charges[{index}].meter"),
                format!("no meter {}", quoted(code)),
            ));
        };
        for property in charge.group.keys() {
            if !meter.spec.group_by.contains(property) {
                return Err(LedgerError::new(
                    ErrorCode::FieldInvalid,
                    format!("charges[{index}].group"),
                    format!(
                        "meter {} does not group by {} (its group_by: {})",
                        quoted(code),
                        quoted(property),
                        meter.spec.group_by.join(", ")
                    ),
                ));
            }
        }
        let percentage = matches!(charge.pricing, Pricing::Percentage { .. });
        if percentage && meter.spec.aggregation != Aggregation::Sum {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                format!("charges[{index}].meter"),
                format!(
                    "a percentage charge reads each event's value: meter {} aggregates by {}, not sum",
                    quoted(code),
                    meter.spec.aggregation.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Publishes a plan version (the writer's half; `spec` was parsed and
/// validated by [`parse_plan`]). `Ok((version, seq, false))` when `spec` is
/// the current version: nothing is recorded, so a retry is safe.
pub fn publish_plan(
    state: &mut LedgerState,
    spec: PlanSpec,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(u32, u64, bool), LedgerError> {
    // The retry comes first: a version recorded is the answer, whatever
    // changed since (a meter's later version may have dropped a group).
    let current = state.plans().current(&spec.code);
    if let Some(current) = current.filter(|current| current.spec == spec) {
        return Ok((current.version, current.seq, false));
    }
    check_references(
        &spec,
        |code| state.currency_scale(code).is_some(),
        state.catalog(),
    )?;
    let version = match current {
        Some(current) if current.spec.currency != spec.currency => {
            return Err(LedgerError::new(
                ErrorCode::PlanCurrencyChanged,
                "currency",
                format!(
                    "plan {} is priced in {}; a new version cannot change that (publish a new plan)",
                    quoted(&spec.code),
                    current.spec.currency
                ),
            ));
        }
        Some(current) => current
            .version
            .checked_add(1)
            .ok_or_else(|| LedgerError::new(ErrorCode::FieldInvalid, "code", "no more versions"))?,
        None => 1,
    };
    let recorded_at = state.next_recorded_at(ctx.now);
    let journaled = state.append(Entry {
        recorded_at,
        key_id: ctx.key_id.clone(),
        body: EntryBody::PlanPublished(PlanPublished { version, spec }),
    });
    let seq = journaled.seq;
    out.push(journaled);
    Ok((version, seq, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{
        "code": "pro",
        "currency": "USD",
        "interval": {"unit": "monthly", "anchor": "2026-01-01"},
        "charges": [{"code": "calls", "meter": "calls",
                     "pricing": {"model": "per_unit", "unit_price": "0.10"}}]
    }"#;

    #[test]
    fn a_document_is_recorded_normalized() {
        // Goal: 0.10 is recorded as 0.1, so a document and its replay agree.
        let spec = parse_plan(PLAN, "plan_json").unwrap();
        let Pricing::PerUnit { unit_price } = spec.charges[0].pricing else {
            panic!("per unit expected");
        };
        assert_eq!(unit_price.to_string(), "0.1");
    }

    #[test]
    fn document_errors_name_their_path() {
        // Goal: a syntax error names the request field; a bad value, an
        // unknown field and a missing one name their place in the document.
        let error = |json: &str| {
            let e = parse_plan(json, "plan_json").unwrap_err();
            (e.code, e.field)
        };
        assert_eq!(
            error("{\"code\": "),
            (ErrorCode::FieldInvalid, "plan_json".into())
        );
        assert_eq!(error(" "), (ErrorCode::FieldRequired, "plan_json".into()));
        assert_eq!(
            error(&PLAN.replace("\"pricing\"", "\"free_unit\": 1, \"pricing\"")),
            (ErrorCode::FieldInvalid, "charges[0].free_unit".into())
        );
        assert_eq!(
            error(&PLAN.replace("2026-01-01", "2026-13-01")),
            (ErrorCode::FieldInvalid, "interval.anchor".into())
        );
        assert_eq!(
            error(&PLAN.replace("\"currency\": \"USD\",", "")),
            (ErrorCode::FieldRequired, "currency".into())
        );
        assert_eq!(
            error(&PLAN.replace("\"code\": \"calls\", ", "")),
            (ErrorCode::FieldRequired, "charges[0].code".into())
        );
        assert_eq!(
            error(&PLAN.replace("0.10", "-1")),
            (
                ErrorCode::FieldInvalid,
                "charges[0].pricing.unit_price".into()
            )
        );
    }
}
