//! Stateless checks of a request's shape: what can be judged without looking
//! at the ledger. A request failing here is refused and never recorded (the
//! same content would fail the same way on every retry).

use super::command::{
    AccountSpec, CurrencySpec, PostPendingSpec, ReverseSpec, TransactionCommand, TransactionSpec,
    VoidPendingSpec,
};
use super::limits::*;
use crate::error::LedgerError;
use tally_core::entry::Metadata;
use tally_core::error_code::ErrorCode;
use tally_core::money::SCALE_MAX;

type Check = Result<(), LedgerError>;

fn required(field: &str, value: &str) -> Check {
    if value.is_empty() {
        return Err(LedgerError::new(
            ErrorCode::FieldRequired,
            field,
            format!("{field} is required"),
        ));
    }
    Ok(())
}

pub fn max_len(field: &str, value: &str, max: usize) -> Check {
    if value.len() > max {
        return Err(LedgerError::new(
            ErrorCode::FieldTooLong,
            field,
            format!("{field} is {} bytes; the limit is {max}", value.len()),
        ));
    }
    Ok(())
}

/// Ids are 1..=128 bytes of printable ASCII (no spaces, no controls).
pub fn id(field: &str, value: &str) -> Check {
    required(field, value)?;
    max_len(field, value, ID_BYTES_MAX)?;
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            field,
            format!("{field} contains {c:?}; ids are printable ASCII without spaces"),
        ));
    }
    Ok(())
}

/// `assets:receivable:acme`: 1..=8 segments of 1..=64 bytes of `[a-z0-9_.-]`.
pub fn account_name(field: &str, name: &str) -> Check {
    required(field, name)?;
    max_len(field, name, ACCOUNT_NAME_BYTES_MAX)?;
    // Counted, not collected: this runs for every posting of every batch.
    let segment_count = name.bytes().filter(|&b| b == b':').count() + 1;
    if segment_count > ACCOUNT_NAME_SEGMENTS_MAX {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            field,
            format!(
                "account name {name:?} has {segment_count} segments; the limit is {ACCOUNT_NAME_SEGMENTS_MAX}"
            ),
        ));
    }
    for segment in name.split(':') {
        let valid_chars = segment.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
        if segment.is_empty() || segment.len() > ACCOUNT_NAME_SEGMENT_BYTES_MAX || !valid_chars {
            return Err(LedgerError::new(
                ErrorCode::FieldInvalid,
                field,
                format!(
                    "account name {name:?}: segments are 1 to {ACCOUNT_NAME_SEGMENT_BYTES_MAX} characters of a-z, 0-9, '_', '-', '.', separated by ':'"
                ),
            ));
        }
    }
    Ok(())
}

pub fn currency_code(field: &str, code: &str) -> Check {
    required(field, code)?;
    max_len(field, code, CURRENCY_CODE_BYTES_MAX)?;
    if !code
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            field,
            format!("currency code {code:?} must be A-Z, 0-9 or '_'"),
        ));
    }
    Ok(())
}

pub fn text(field: &str, value: &str) -> Check {
    max_len(field, value, DESCRIPTION_BYTES_MAX)
}

pub fn metadata(field: &str, metadata: &Metadata) -> Check {
    if metadata.len() > METADATA_ENTRIES_MAX {
        return Err(LedgerError::new(
            ErrorCode::FieldTooLong,
            field,
            format!(
                "{field} has {} entries; the limit is {METADATA_ENTRIES_MAX}",
                metadata.len()
            ),
        ));
    }
    for (key, value) in metadata {
        let key_field = format!("{field}[{key:?}]");
        required(&key_field, key)?;
        max_len(&key_field, key, METADATA_KEY_BYTES_MAX)?;
        max_len(&key_field, value, METADATA_VALUE_BYTES_MAX)?;
    }
    Ok(())
}

pub fn currency_spec(spec: &CurrencySpec) -> Check {
    currency_code("code", &spec.code)?;
    if spec.scale > u32::from(SCALE_MAX) {
        return Err(LedgerError::new(
            ErrorCode::ScaleOutOfRange,
            "scale",
            format!("scale {} is over the maximum of {SCALE_MAX}", spec.scale),
        ));
    }
    Ok(())
}

pub fn account_spec(spec: &AccountSpec) -> Check {
    account_name("name", &spec.name)?;
    currency_code("currency", &spec.currency)?;
    metadata("metadata", &spec.metadata)
}

pub fn command(command: &TransactionCommand) -> Check {
    match command {
        TransactionCommand::Transaction(spec) => transaction(spec),
        TransactionCommand::PostPending(spec) => post_pending(spec),
        TransactionCommand::VoidPending(spec) => void_pending(spec),
        TransactionCommand::Reverse(spec) => reverse(spec),
    }
}

fn transaction(spec: &TransactionSpec) -> Check {
    id("id", &spec.id)?;
    if spec.postings.len() < 2 {
        return Err(LedgerError::new(
            ErrorCode::PostingsTooFew,
            "postings",
            format!(
                "a transaction needs at least 2 postings, got {}",
                spec.postings.len()
            ),
        ));
    }
    if spec.postings.len() > POSTINGS_MAX {
        return Err(LedgerError::new(
            ErrorCode::FieldTooLong,
            "postings",
            format!(
                "{} postings; the limit is {POSTINGS_MAX}",
                spec.postings.len()
            ),
        ));
    }
    for (index, posting) in spec.postings.iter().enumerate() {
        // Field paths are built only on failure: this runs for every posting.
        let within = |error: LedgerError| error.within(&format!("postings[{index}]"));
        account_name("account", &posting.account).map_err(within)?;
        if posting.amount.is_zero() || posting.amount.is_sign_negative() {
            return Err(LedgerError::new(
                ErrorCode::AmountNotPositive,
                format!("postings[{index}].amount"),
                format!("amount {} must be positive", posting.amount),
            ));
        }
        if let Some(currency) = &posting.currency {
            currency_code("currency", currency).map_err(within)?;
        }
    }
    text("description", &spec.description)?;
    metadata("metadata", &spec.metadata)?;
    if spec.timeout_seconds > 0 && !spec.pending {
        return Err(LedgerError::new(
            ErrorCode::TimeoutInvalid,
            "timeout_seconds",
            "a timeout applies only to pending transactions",
        ));
    }
    if spec.timeout_seconds > TIMEOUT_SECONDS_MAX {
        return Err(LedgerError::new(
            ErrorCode::TimeoutInvalid,
            "timeout_seconds",
            format!(
                "timeout {} s is over the maximum of {TIMEOUT_SECONDS_MAX} s",
                spec.timeout_seconds
            ),
        ));
    }
    Ok(())
}

fn post_pending(spec: &PostPendingSpec) -> Check {
    id("id", &spec.id)?;
    id("pending_id", &spec.pending_id)?;
    if spec.amounts.len() > POSTINGS_MAX {
        return Err(LedgerError::new(
            ErrorCode::FieldTooLong,
            "amounts",
            format!("more than {POSTINGS_MAX} amounts"),
        ));
    }
    for (index, amount) in spec.amounts.iter().enumerate() {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(LedgerError::new(
                ErrorCode::AmountNotPositive,
                format!("amounts[{index}]"),
                format!("amount {amount} is negative"),
            ));
        }
    }
    text("description", &spec.description)?;
    metadata("metadata", &spec.metadata)
}

fn void_pending(spec: &VoidPendingSpec) -> Check {
    id("id", &spec.id)?;
    id("pending_id", &spec.pending_id)?;
    text("reason", &spec.reason)
}

fn reverse(spec: &ReverseSpec) -> Check {
    id("id", &spec.id)?;
    id("transaction_id", &spec.transaction_id)?;
    text("description", &spec.description)?;
    metadata("metadata", &spec.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn account_names() {
        // Goal: hierarchical lowercase names pass; anything else is FIELD_INVALID.
        for good in [
            "assets",
            "assets:receivable:acme",
            "revenue:usage.api-calls_v2",
        ] {
            assert!(account_name("name", good).is_ok(), "{good}");
        }
        for bad in [
            "Assets",
            "assets::x",
            ":assets",
            "assets:",
            "a b",
            "café",
            "a:b:c:d:e:f:g:h:i",
        ] {
            let error = account_name("name", bad).unwrap_err();
            assert_eq!(error.code, ErrorCode::FieldInvalid, "{bad}");
            assert_eq!(error.field, "name");
        }
        assert_eq!(
            account_name("name", "").unwrap_err().code,
            ErrorCode::FieldRequired
        );
        assert_eq!(
            account_name("name", &"a".repeat(300)).unwrap_err().code,
            ErrorCode::FieldTooLong
        );
    }

    #[test]
    fn ids() {
        // Goal: ids are printable ASCII within the limit.
        assert!(id("id", "tx-1").is_ok());
        assert_eq!(id("id", "tx 1").unwrap_err().code, ErrorCode::FieldInvalid);
        assert_eq!(
            id("id", "tx\u{0}").unwrap_err().code,
            ErrorCode::FieldInvalid
        );
        assert_eq!(
            id("id", &"x".repeat(129)).unwrap_err().code,
            ErrorCode::FieldTooLong
        );
    }

    proptest! {
        #[test]
        fn validators_never_panic(text in "\\PC{0,300}") {
            // Goal: arbitrary unicode is judged, never a panic.
            let _ = account_name("name", &text);
            let _ = id("id", &text);
            let _ = currency_code("code", &text);
        }
    }
}
