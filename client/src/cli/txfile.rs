//! The JSON file of `tally tx post --file`: one transaction object or an array.
//!
//! ```json
//! {"id": "tx-1",
//!  "postings": [{"account": "assets:cash", "direction": "debit", "amount": "10.00"},
//!               {"account": "revenue:sales", "direction": "credit", "amount": "10.00"}],
//!  "description": "cash sale", "metadata": {"order": "42"},
//!  "effective_at": "2024-05-01T12:00:00Z", "pending": false, "timeout_seconds": 0}
//! ```
//!
//! Amounts must be strings: a JSON number may already have been rounded by
//! whatever wrote it, and money is never a float here.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use tally_client::{Direction, Posting, TransactionSpec};

use super::args::{parse_decimal, parse_time};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTransaction {
    id: String,
    postings: Vec<FilePosting>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    effective_at: Option<String>,
    #[serde(default)]
    pending: bool,
    #[serde(default)]
    timeout_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePosting {
    account: String,
    direction: String,
    amount: Value,
    #[serde(default)]
    currency: Option<String>,
}

/// Parses the file's text; errors name the place, e.g. `[1].postings[0].amount`.
pub fn parse(text: &str) -> Result<Vec<TransactionSpec>, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| transaction(item).map_err(|error| format!("[{index}]{error}")))
            .collect(),
        item @ Value::Object(_) => Ok(vec![transaction(item)?]),
        _ => Err("expected a transaction object or an array of them".into()),
    }
}

fn transaction(value: Value) -> Result<TransactionSpec, String> {
    let file: FileTransaction =
        serde_json::from_value(value).map_err(|error| format!(": {error}"))?;
    let mut spec = TransactionSpec::new(file.id).description(file.description);
    spec.metadata = file.metadata;
    if let Some(text) = file.effective_at {
        spec = spec.effective_at(parse_time(&text).map_err(|e| format!(".effective_at: {e}"))?);
    }
    for (index, posting_value) in file.postings.into_iter().enumerate() {
        spec = spec.posting(posting(posting_value).map_err(|e| format!(".postings[{index}]{e}"))?);
    }
    spec.pending = file.pending;
    spec.timeout_seconds = file.timeout_seconds;
    Ok(spec)
}

fn posting(file: FilePosting) -> Result<Posting, String> {
    let direction: Direction = file
        .direction
        .parse()
        .map_err(|error| format!(".direction: {error}"))?;
    let amount = match &file.amount {
        Value::String(text) => parse_decimal(text).map_err(|e| format!(".amount: {e}"))?,
        other => {
            return Err(format!(
                ".amount: {other} must be a string such as \"10.00\", not a JSON number"
            ))
        }
    };
    let mut posting = Posting::new(file.account, direction, amount);
    posting.currency = file.currency;
    Ok(posting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn single_object_parses() {
        // The documented shape, with every optional field.
        let specs = parse(
            r#"{"id":"tx-1","postings":[
                {"account":"assets:cash","direction":"debit","amount":"10.00"},
                {"account":"revenue:sales","direction":"credit","amount":"10.00","currency":"USD"}],
               "description":"sale","metadata":{"k":"v"},
               "effective_at":"2024-05-01T12:00:00Z","pending":true,"timeout_seconds":30}"#,
        )
        .unwrap();
        assert_eq!(specs.len(), 1);
        let spec = &specs[0];
        assert_eq!(spec.id, "tx-1");
        assert_eq!(spec.postings[0].direction, Direction::Debit);
        assert_eq!(spec.postings[1].amount, dec!(10.00));
        assert_eq!(spec.postings[1].currency.as_deref(), Some("USD"));
        assert!(spec.pending && spec.timeout_seconds == 30);
        assert!(spec.effective_at.is_some());
        assert_eq!(spec.metadata.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn array_parses_in_order() {
        // An array becomes a batch, in file order.
        let specs = parse(r#"[{"id":"a","postings":[]},{"id":"b","postings":[]}]"#).unwrap();
        let ids: Vec<&str> = specs.iter().map(|spec| spec.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn numeric_amount_is_refused_with_its_path() {
        // A float amount is an error that says where and why.
        let error = parse(
            r#"[{"id":"a","postings":[]},
                {"id":"b","postings":[{"account":"x","direction":"debit","amount":10.1}]}]"#,
        )
        .unwrap_err();
        assert!(error.starts_with("[1].postings[0].amount:"), "{error}");
        assert!(error.contains("not a JSON number"), "{error}");
    }

    #[test]
    fn unknown_fields_and_bad_direction_are_refused() {
        // A typo in a key must not silently drop data.
        let error = parse(r#"{"id":"a","postings":[],"descripton":"x"}"#).unwrap_err();
        assert!(error.contains("descripton"), "{error}");
        let error =
            parse(r#"{"id":"a","postings":[{"account":"x","direction":"up","amount":"1"}]}"#)
                .unwrap_err();
        assert!(error.starts_with(".postings[0].direction"), "{error}");
        assert!(parse("42").is_err());
        assert!(parse("{").is_err());
    }
}
