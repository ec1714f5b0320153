//! Errors as gRPC statuses.
//!
//! A failed call carries the ledger's error in its status details, as the proto
//! promises: a `google.rpc.ErrorInfo` (reason = the `ErrorCode` name, domain
//! `tally.dev`, metadata `field`) and, when a field is at fault, a
//! `google.rpc.BadRequest` field violation. [`grpc_code`] is the one place
//! where ledger codes map onto gRPC codes.

use std::collections::HashMap;

use tally_core::error_code::ErrorCode;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, LedgerError};

/// The `ErrorInfo.domain` of every Tally error.
pub const ERROR_DOMAIN: &str = "tally.dev";

/// The gRPC code of each ledger error code.
pub fn grpc_code(code: ErrorCode) -> Code {
    let code = tally_proto::v1::ErrorCode::try_from(code.number() as i32)
        .unwrap_or(tally_proto::v1::ErrorCode::Internal);
    tally_proto::grpc_code(code)
}

/// A status with the ledger error's code, message and structured details.
pub fn ledger_status(error: &LedgerError) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        error.code.name(),
        ERROR_DOMAIN,
        HashMap::from([("field".to_string(), error.field.clone())]),
    );
    if !error.field.is_empty() {
        details.add_bad_request_violation(error.field.clone(), error.message.clone());
    }
    Status::with_error_details(grpc_code(error.code), error.message.clone(), details)
}

/// A status for any engine failure. Storage failures are logged here and
/// reported without their internals.
pub fn status(error: Error) -> Status {
    match error {
        Error::Ledger(error) => ledger_status(&error),
        Error::Store(error) => {
            tracing::error!(%error, "storage failure while serving a request");
            ledger_status(&LedgerError::new(
                ErrorCode::Internal,
                "",
                "internal storage error; see the server log",
            ))
        }
        Error::Unavailable(reason) => ledger_status(&LedgerError::new(
            ErrorCode::Unavailable,
            "",
            format!("the ledger is not accepting writes: {reason}"),
        )),
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        status(error)
    }
}

impl From<LedgerError> for Status {
    fn from(error: LedgerError) -> Status {
        ledger_status(&error)
    }
}

/// A server-side failure outside the engine (a panicked task, an encoding bug).
pub fn internal(context: &str, error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "{context}");
    ledger_status(&LedgerError::new(
        ErrorCode::Internal,
        "",
        format!("internal error: {context}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;

    #[test]
    fn every_code_has_its_grpc_code() {
        // Goal: the mapping is total and each family lands where the design says.
        for &code in ErrorCode::ALL {
            let expected = match code.name() {
                "BATCH_TOO_LARGE" | "RATE_LIMITED" => Code::ResourceExhausted,
                "UNAUTHENTICATED" => Code::Unauthenticated,
                "PERMISSION_DENIED" => Code::PermissionDenied,
                "SEQ_OUT_OF_RANGE" => Code::OutOfRange,
                "INTERNAL" => Code::Internal,
                "UNAVAILABLE" => Code::Unavailable,
                name if name.ends_with("_NOT_FOUND") => Code::NotFound,
                name if name.ends_with("_EXISTS") => Code::AlreadyExists,
                "EVENT_ID_CONFLICT" => Code::AlreadyExists,
                "ACCOUNT_CLOSED"
                | "ACCOUNT_NOT_EMPTY"
                | "BALANCE_CONSTRAINT_VIOLATED"
                | "TRANSACTION_ALREADY_FAILED"
                | "NOT_PENDING"
                | "PENDING_ALREADY_POSTED"
                | "PENDING_ALREADY_VOIDED"
                | "PENDING_EXPIRED"
                | "PENDING_AMOUNT_EXCEEDED"
                | "ALREADY_REVERSED"
                | "NOT_REVERSIBLE"
                | "LINKED_ITEM_FAILED"
                | "METER_AGGREGATION_CHANGED"
                | "PERIOD_NOT_AFTER_CLOSED"
                | "PLAN_CURRENCY_CHANGED"
                | "PLAN_MISMATCH"
                | "BILLING_PROFILE_MISSING"
                | "BILLING_CURRENCY_CHANGED"
                | "SUBSCRIPTION_CHANGE_INVALID"
                | "INVOICE_NOT_VOIDABLE"
                | "CREDIT_EXCEEDS_INVOICE"
                | "ALLOCATION_EXCEEDS_OUTSTANDING"
                | "CUSTOMER_CREDIT_INSUFFICIENT"
                | "BILLING_PERIOD_OPEN" => Code::FailedPrecondition,
                _ => Code::InvalidArgument,
            };
            assert_eq!(grpc_code(code), expected, "{code}");
        }
    }

    #[test]
    fn status_carries_error_info_and_bad_request() {
        // Goal: a client can read code, field and message back from the status.
        let error = LedgerError::new(
            ErrorCode::TransactionUnbalanced,
            "items[2].transaction.postings",
            "debits 10.00 USD differ from credits 9.00 USD",
        );
        let status = ledger_status(&error);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), error.message);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "TRANSACTION_UNBALANCED");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata["field"], "items[2].transaction.postings");
        let bad_request = status.get_details_bad_request().unwrap();
        assert_eq!(bad_request.field_violations.len(), 1);
        assert_eq!(
            bad_request.field_violations[0].field,
            "items[2].transaction.postings"
        );
    }

    #[test]
    fn no_field_means_no_bad_request() {
        // Goal: state errors without a field carry ErrorInfo only.
        let status = ledger_status(&LedgerError::new(ErrorCode::AccountNotFound, "", "no"));
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.get_details_bad_request().is_none());
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "ACCOUNT_NOT_FOUND"
        );
    }

    #[test]
    fn storage_errors_are_internal_and_opaque() {
        // Goal: storage internals never reach the client; unavailability is retryable.
        let store = Error::Store(StoreError::Corrupt("secret path /x/y".to_string()));
        let internal_status = status(store);
        assert_eq!(internal_status.code(), Code::Internal);
        assert!(!internal_status.message().contains("secret"));
        assert_eq!(
            internal_status.get_details_error_info().unwrap().reason,
            "INTERNAL"
        );

        let unavailable = status(Error::Unavailable("shutting down".to_string()));
        assert_eq!(unavailable.code(), Code::Unavailable);
        assert_eq!(
            unavailable.get_details_error_info().unwrap().reason,
            "UNAVAILABLE"
        );
    }
}
