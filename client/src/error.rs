//! Errors of the client: one enum for failed calls, one struct for failed batch items.
//!
//! A call fails as a whole with [`ClientError`]; inside a batch that was answered,
//! each item may fail on its own with [`ItemError`]. Keeping the two apart lets a
//! caller tell "the ledger refused this transfer" from "the ledger could not be asked".

use std::fmt;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Stable, machine-readable error codes of the ledger (`tally.v1.ErrorCode`).
///
/// Re-exported so that users never need the generated `tally-proto` crate. The
/// variants carry the proto names in `UpperCamelCase` (`TRANSACTION_UNBALANCED` is
/// [`ErrorCode::TransactionUnbalanced`]); `as_str_name` gives the wire name back.
pub use tally_proto::v1::ErrorCode;

/// The result of a client call.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A call that failed as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the connection broke (gRPC `Unavailable`
    /// without a ledger error code). Retried automatically on idempotent calls.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered with an error status. `code` is the ledger's stable code
    /// (`Unspecified` when the status carried none, e.g. from a proxy).
    #[error("{}: {message}{}", code.as_str_name(), FieldSuffix(field))]
    Api {
        code: ErrorCode,
        field: String,
        message: String,
        status: Code,
    },
    /// No answer arrived before the call's deadline. The call may still have taken
    /// effect on the server; retry it with the same id to learn its outcome.
    #[error("deadline exceeded")]
    Timeout,
    /// The server's answer broke the contract (e.g. an amount that is not a decimal).
    #[error("invalid response from server: {0}")]
    InvalidResponse(String),
    /// The request could not be built on this side (e.g. an api key that is not a
    /// valid header value, a time outside the protobuf range). Nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// The ledger error code, when the server named one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The gRPC status code of an `Api` error.
    pub fn status(&self) -> Option<Code> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the failure says the server was unavailable, so that an idempotent
    /// call may be sent again. Timeouts are not retried: the server may be overloaded,
    /// and a caller that wants to retry can do so with the same id.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Api { status, .. } => *status == Code::Unavailable,
            _ => false,
        }
    }

    pub(crate) fn invalid_response(what: impl fmt::Display) -> Self {
        ClientError::InvalidResponse(what.to_string())
    }
}

/// Prints ` (field: path)` when a field is named, nothing otherwise.
struct FieldSuffix<'a>(&'a str);

impl fmt::Display for FieldSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " (field: {})", self.0)
        }
    }
}

impl From<Status> for ClientError {
    /// Reads the ledger's `google.rpc.ErrorInfo` detail when present; otherwise
    /// classifies the status by its gRPC code alone.
    fn from(status: Status) -> Self {
        if let Some(info) = status.get_details_error_info() {
            let code = ErrorCode::from_str_name(&info.reason).unwrap_or(ErrorCode::Unspecified);
            let field = info
                .metadata
                .get("field")
                .cloned()
                .or_else(|| violated_field(&status))
                .unwrap_or_default();
            return ClientError::Api {
                code,
                field,
                message: status.message().to_string(),
                status: status.code(),
            };
        }
        let source = std::error::Error::source(&status);
        // tonic reports its own client-side deadline as Cancelled "Timeout expired".
        let timed_out = status.code() == Code::Cancelled
            && status.message() == tonic::TimeoutExpired(()).to_string();
        match status.code() {
            Code::DeadlineExceeded => ClientError::Timeout,
            _ if timed_out => ClientError::Timeout,
            // A status with a source was made on this side from a connection
            // failure (refused, reset, closed mid-call), not sent by a server.
            Code::Unavailable => ClientError::Transport(transport_message(&status)),
            _ if source.is_some() => ClientError::Transport(transport_message(&status)),
            code => ClientError::Api {
                code: ErrorCode::Unspecified,
                field: violated_field(&status).unwrap_or_default(),
                message: status.message().to_string(),
                status: code,
            },
        }
    }
}

impl From<tonic::transport::Error> for ClientError {
    fn from(error: tonic::transport::Error) -> Self {
        ClientError::Transport(error_chain(&error))
    }
}

/// The messages of an error and of its sources, joined, without the repetitions
/// that nested transport errors carry ("transport error: tcp connect error: tcp
/// connect error: ...").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(cause) = current {
        let text = cause.to_string();
        let generic = text == "transport error" && cause.source().is_some();
        if !generic && parts.last() != Some(&text) {
            parts.push(text);
        }
        current = cause.source();
    }
    parts.join(": ")
}

/// The status message followed by its source chain, e.g. "operation was
/// canceled: connection closed before message completed".
fn transport_message(status: &Status) -> String {
    let mut parts = vec![status.message().to_string()];
    if let Some(source) = std::error::Error::source(status) {
        let chain = error_chain(source);
        if !status.message().contains(&chain) {
            parts.push(chain);
        }
    }
    parts.retain(|part| !part.is_empty());
    parts.join(": ")
}

/// The first field named by a `google.rpc.BadRequest` detail.
fn violated_field(status: &Status) -> Option<String> {
    let bad_request = status.get_details_bad_request()?;
    bad_request
        .field_violations
        .into_iter()
        .next()
        .map(|violation| violation.field)
}

/// One item of a batch that the ledger refused; the other items are unaffected
/// unless they were linked to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {index}: {}: {message}{}", code.as_str_name(), FieldSuffix(field))]
pub struct ItemError {
    /// Position of the item in the request.
    pub index: usize,
    pub code: ErrorCode,
    /// Path of the offending field, e.g. `items[3].transaction.postings[1].amount`.
    pub field: String,
    pub message: String,
}

impl From<ItemError> for ClientError {
    /// Used by the single-item conveniences, so that a refused item reads like the
    /// error of a single-item RPC. The gRPC code is derived from the ledger code the
    /// way the server maps them.
    fn from(error: ItemError) -> Self {
        ClientError::Api {
            status: grpc_code(error.code),
            code: error.code,
            field: error.field,
            message: error.message,
        }
    }
}

/// The gRPC status code that goes with a ledger error code.
fn grpc_code(code: ErrorCode) -> Code {
    tally_proto::grpc_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    fn status_with_info(code: Code, reason: &str, field: &str) -> Status {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            reason,
            "tally.dev",
            [("field".to_string(), field.to_string())],
        );
        Status::with_error_details(code, "debits 10 != credits 9", details)
    }

    #[test]
    fn status_with_error_info_becomes_api_error() {
        // The reason names the ErrorCode; the field comes from the metadata.
        let status = status_with_info(
            Code::InvalidArgument,
            "TRANSACTION_UNBALANCED",
            "items[0].transaction.postings",
        );
        let error = ClientError::from(status);
        assert_eq!(
            error,
            ClientError::Api {
                code: ErrorCode::TransactionUnbalanced,
                field: "items[0].transaction.postings".into(),
                message: "debits 10 != credits 9".into(),
                status: Code::InvalidArgument,
            }
        );
        assert_eq!(
            error.to_string(),
            "TRANSACTION_UNBALANCED: debits 10 != credits 9 (field: items[0].transaction.postings)"
        );
    }

    #[test]
    fn unknown_reason_falls_back_to_unspecified() {
        // A reason this client does not know must not be lost nor panic.
        let error = ClientError::from(status_with_info(Code::Internal, "NEW_THING", ""));
        assert_eq!(error.code(), Some(ErrorCode::Unspecified));
        assert_eq!(error.status(), Some(Code::Internal));
    }

    #[test]
    fn bare_statuses_are_classified_by_code() {
        // Without details: Unavailable is transport, DeadlineExceeded is a timeout.
        assert!(matches!(
            ClientError::from(Status::unavailable("connection refused")),
            ClientError::Transport(_)
        ));
        assert_eq!(
            ClientError::from(Status::deadline_exceeded("late")),
            ClientError::Timeout
        );
        let error = ClientError::from(Status::unauthenticated("no key"));
        assert_eq!(error.code(), Some(ErrorCode::Unspecified));
        assert_eq!(error.status(), Some(Code::Unauthenticated));
        assert!(!error.is_retryable());
    }

    #[test]
    fn local_connection_failures_are_transport_errors() {
        // A status made on this side from an I/O error (server killed mid-call)
        // is a transport failure, retryable, whatever its code.
        let status = Status::from_error(Box::new(std::io::Error::other("connection reset")));
        let error = ClientError::from(status);
        assert!(
            matches!(error, ClientError::Transport(ref m) if m.contains("connection reset")),
            "{error:?}"
        );
        assert!(error.is_retryable());
        assert_eq!(
            ClientError::from(Status::cancelled("Timeout expired")),
            ClientError::Timeout
        );
    }

    #[test]
    fn field_falls_back_to_bad_request_violation() {
        // A status that names the field only in a BadRequest still reports it.
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("accounts[0].name", "bad segment");
        let status = Status::with_error_details(Code::InvalidArgument, "bad", details);
        let error = ClientError::from(status);
        assert!(matches!(error, ClientError::Api { ref field, .. } if field == "accounts[0].name"));
    }

    #[test]
    fn item_error_converts_with_matching_grpc_code() {
        // Single-item conveniences turn a refused item into an Api error.
        let item = ItemError {
            index: 0,
            code: ErrorCode::AccountNotFound,
            field: "postings[0].account".into(),
            message: "no such account".into(),
        };
        let error = ClientError::from(item);
        assert_eq!(error.status(), Some(Code::NotFound));
        assert_eq!(error.code(), Some(ErrorCode::AccountNotFound));
    }
}
